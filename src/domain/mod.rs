//! Pure rules of the product: what a storage key is, how `If-Match` is read,
//! how a draft is merged back. No I/O here, so every rule is unit-tested alone.

pub mod credentials;
pub mod draft;
pub mod items;
pub mod merge;
pub mod precondition;
pub mod storage_key;
pub mod timestamp;
pub mod user;

pub use draft::DraftReason;
pub use precondition::{IfMatch, Precondition};
pub use storage_key::StorageKey;
pub use timestamp::Timestamp;
pub use user::{Role, Username};
