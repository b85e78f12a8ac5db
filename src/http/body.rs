//! Reading request bodies: a hard size limit (whatever Content-Length
//! claims) and JSON parsing with our own error codes.
//!
//! Every JSON body passes a strict check before it is deserialised, because
//! `serde_json` on its own is lenient where silence would lose or change data:
//! it keeps the last of two equal keys in an object, and (with the
//! `arbitrary_precision` feature this crate needs to keep big numbers exact)
//! it reads an object whose only key is `$serde_json::private::Number` as a
//! number. The check rejects, each with its own code: bytes that are not
//! UTF-8 (`invalid_utf8`), duplicate keys (`duplicate_json_key`), nesting
//! deeper than `--max-json-depth` (`json_too_deep`), lone UTF-16 surrogate
//! escapes (`invalid_unicode_escape`) and that reserved key
//! (`reserved_json_key`); any other syntax error, trailing bytes included, is
//! `invalid_json`.

use super::error::ApiError;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
pub async fn read_limited(
    mut payload: web::Payload,
    declared_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if declared_length.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest(format!("reading the body failed: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses exactly one JSON value (trailing bytes are an error) after the
/// strict check of the module docs. Bad syntax is `invalid_json` (or one of
/// the finer codes above); valid JSON of the wrong shape is `invalid_request`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], max_depth: usize) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| ApiError::InvalidUtf8(e.to_string()))?;
    check_json(text, max_depth)?;
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

/// The key `serde_json` uses to smuggle an arbitrary-precision number
/// through `visit_map`; a client must not be able to send it.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Walks the whole document once without building it, and says why it is
/// refused, if it is.
fn check_json(text: &str, max_depth: usize) -> Result<(), ApiError> {
    let rejection = RefCell::new(None);
    let checker = Checker {
        text,
        depth: 0,
        max_depth,
        rejection: &rejection,
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = checker.deserialize(&mut deserializer).and_then(|()| deserializer.end());
    if let Some(rejection) = rejection.into_inner() {
        return Err(rejection);
    }
    result.map_err(|e| {
        let message = e.to_string();
        if message.starts_with("recursion limit exceeded") {
            ApiError::JsonTooDeep { limit: max_depth }
        } else if message.contains("surrogate") || message.starts_with("unexpected end of hex escape") {
            ApiError::InvalidUnicodeEscape(message)
        } else {
            ApiError::InvalidJson(message)
        }
    })
}

/// One value of the document at `depth` (the number of arrays and objects
/// around it). A refusal is stored in `rejection`: `serde_json` would only
/// keep its text.
#[derive(Clone, Copy)]
struct Checker<'a> {
    text: &'a str,
    depth: usize,
    max_depth: usize,
    rejection: &'a RefCell<Option<ApiError>>,
}

impl Checker<'_> {
    fn reject<E: serde::de::Error>(&self, error: ApiError) -> E {
        let message = error.to_string();
        *self.rejection.borrow_mut() = Some(error);
        E::custom(message)
    }

    /// The checker for a value nested one level deeper, or a refusal.
    fn nested<E: serde::de::Error>(&self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(self.reject(ApiError::JsonTooDeep { limit: self.max_depth }));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..*self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Checker<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let key_seed = KeySeed { text: self.text };
        let Some(first) = map.next_key_seed(key_seed)? else {
            return self.nested().map(|_| ());
        };
        let first = match first {
            // An arbitrary-precision number from the parser itself.
            Key::NumberToken => return map.next_value::<IgnoredAny>().map(|_| ()),
            Key::Name(name) if name == NUMBER_TOKEN => {
                return Err(self.reject(ApiError::ReservedJsonKey));
            }
            Key::Name(name) => name,
        };
        let inner = self.nested()?;
        let mut seen = HashSet::from([first]);
        map.next_value_seed(inner)?;
        while let Some(key) = map.next_key_seed(key_seed)? {
            let name = match key {
                Key::NumberToken => NUMBER_TOKEN.to_owned(),
                Key::Name(name) => name,
            };
            if name == NUMBER_TOKEN {
                return Err(self.reject(ApiError::ReservedJsonKey));
            }
            if seen.contains(&name) {
                return Err(self.reject(ApiError::DuplicateJsonKey(name)));
            }
            seen.insert(name);
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// An object key as decoded (so `"a"` and `"\u0061"` are the same key).
enum Key {
    /// `serde_json`'s own number marker: a `&'static str` that does not lie
    /// inside the request body.
    NumberToken,
    Name(String),
}

#[derive(Clone, Copy)]
struct KeySeed<'a> {
    text: &'a str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key, E> {
        let in_body = self.text.as_bytes().as_ptr_range().contains(&key.as_ptr());
        if key == NUMBER_TOKEN && !in_body {
            return Ok(Key::NumberToken);
        }
        Ok(Key::Name(key.to_owned()))
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(Key::Name(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn code(body: &str, max_depth: usize) -> &'static str {
        match parse_json::<Value>(body.as_bytes(), max_depth) {
            Ok(_) => "ok",
            Err(error) => error.code(),
        }
    }

    #[test]
    fn valid_documents_pass_and_keep_their_numbers_exact() {
        let text = r#"{"a":[1,{"b":null}],"big":123456789012345678901234567890,"d":0.1,"e":"😀\ud83d\ude00"}"#;
        let value: Value = parse_json(text.as_bytes(), 64).expect("valid");
        assert_eq!(value["big"].to_string(), "123456789012345678901234567890");
        assert_eq!(value["d"].to_string(), "0.1");
        assert_eq!(value["e"], "😀😀");
    }

    #[test]
    fn each_kind_of_bad_input_has_its_own_code() {
        assert_eq!(code("[1,", 64), "invalid_json");
        assert_eq!(code("[1] [2]", 64), "invalid_json");
        assert_eq!(code(r#"{"a":1,"a":2}"#, 64), "duplicate_json_key");
        assert_eq!(code(r#"{"a":1,"\u0061":2}"#, 64), "duplicate_json_key");
        assert_eq!(code(r#"[{"x":{"a":1,"b":{"a":1,"a":1}}}]"#, 64), "duplicate_json_key");
        assert_eq!(code(r#""\ud800""#, 64), "invalid_unicode_escape");
        assert_eq!(code(r#""\udc00""#, 64), "invalid_unicode_escape");
        assert_eq!(
            code(r#"{"$serde_json::private::Number":"12"}"#, 64),
            "reserved_json_key"
        );
        assert_eq!(
            code(r#"{"a":1,"$serde_json::private::Number":"12"}"#, 64),
            "reserved_json_key"
        );
        assert_eq!(
            code(r#"{"\u0024serde_json::private::Number":"12"}"#, 64),
            "reserved_json_key"
        );
        assert!(matches!(
            parse_json::<Value>(b"[\"\xff\"]", 64),
            Err(ApiError::InvalidUtf8(_))
        ));
    }

    #[test]
    fn the_reserved_key_would_otherwise_turn_an_object_into_a_number() {
        // What the check guards against: serde_json alone reads this object as 12.
        let lenient: Value = serde_json::from_str(r#"{"$serde_json::private::Number":"12"}"#).expect("lenient");
        assert!(lenient.is_number(), "{lenient}");
        assert_eq!(
            code(r#"{"$serde_json::private::Number":"12"}"#, 64),
            "reserved_json_key"
        );
        // And it keeps the last of two equal keys.
        let lenient: Value = serde_json::from_str(r#"{"a":1,"a":2}"#).expect("lenient");
        assert_eq!(lenient, serde_json::json!({"a": 2}));
    }

    #[test]
    fn depth_counts_arrays_and_objects_but_not_numbers() {
        assert_eq!(code("[[[1]]]", 3), "ok");
        assert_eq!(code(r#"[[{"a":1}]]"#, 3), "ok");
        assert_eq!(code("[[[[1]]]]", 3), "json_too_deep");
        assert_eq!(code(r#"[[{"a":{}}]]"#, 3), "json_too_deep");
        assert_eq!(code("1", 1), "ok");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(code(&deep, 64), "json_too_deep");
        assert_eq!(code(&deep, 127), "json_too_deep");
        let at_limit = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert_eq!(code(&at_limit, 127), "ok");
    }
}
