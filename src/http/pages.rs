//! The web pages: sign-in, My drafts, and for admins Storage Drafts and the
//! activity log. One HTML shell, one script and one stylesheet, embedded in
//! the binary (no build step, nothing fetched from elsewhere); the script
//! picks the page from the path and talks to the JSON API with the bearer
//! token it keeps in `sessionStorage`.
//!
//! Page responses carry their own Content-Security-Policy, which wins over
//! the `default-src 'none'` that [`super::security_headers`] adds to every
//! other response: only this origin's script, style, images and API, no
//! inline code, no framing.

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const STYLE_CSS: &str = include_str!("ui/style.css");
const ICON_SVG: &[u8] = include_bytes!("ui/icon.svg");

/// The policy of the HTML pages.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The paths that answer with the page shell; the script shows the page the path names.
pub const PAGE_PATHS: &[&str] = &["/", "/login", "/drafts", "/admin/drafts", "/admin/activity"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in PAGE_PATHS {
        cfg.service(super::resource(path).route(web::get().to(page)));
    }
    cfg.service(super::resource("/ui/app.js").route(web::get().to(script)))
        .service(super::resource("/ui/style.css").route(web::get().to(stylesheet)))
        .service(super::resource("/ui/icon.svg").route(web::get().to(icon)));
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .body(INDEX_HTML)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE_CSS)
}

async fn icon() -> HttpResponse {
    HttpResponse::Ok().content_type("image/svg+xml").body(ICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The CSP forbids inline code; these keep the sources honest about it,
    // and keep data out of any HTML parser.

    #[test]
    fn the_shell_has_no_inline_script_or_style() {
        let html = INDEX_HTML.to_lowercase();
        assert_eq!(html.matches("<script").count(), 1, "one script tag, the external one");
        assert!(html.contains("<script src=\"/ui/app.js\" defer></script>"));
        assert!(!html.contains("<style"), "no style element");
        assert!(!html.contains(" style="), "no style attribute");
        let handler = html
            .split_whitespace()
            .find(|word| word.starts_with("on") && word.contains('='));
        assert_eq!(handler, None, "no inline event handler attribute");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing from another origin"
        );
    }

    #[test]
    fn the_script_never_parses_strings_as_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        assert!(!APP_JS.contains("document.cookie"), "the token is never a cookie");
        assert!(
            !APP_JS.contains("localStorage"),
            "the token stays in this tab's sessionStorage"
        );
    }

    #[test]
    fn the_page_policy_allows_only_this_origin() {
        for directive in PAGE_CSP.split("; ") {
            let sources = directive.split_once(' ').map_or("", |(_, sources)| sources);
            assert!(
                sources == "'none'" || sources == "'self'",
                "{directive} must be 'none' or 'self'"
            );
        }
        assert!(PAGE_CSP.starts_with("default-src 'none'"));
    }
}
