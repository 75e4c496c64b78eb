//! How a guest steers the edge cache: through fields it sets with its ordinary
//! header operations, which the node reads and removes before anything else sees
//! them (the origin, the client). The node also removes any a client or an origin
//! sends, so only a guest's count.
//!
//! From the request hook:
//! - [`KEY`]: the key the response is looked up and stored under, in place of
//!   path and query (the host the client addressed stays part of it);
//! - [`CONTROL`] = [`BYPASS`]: neither looked up nor stored;
//! - [`TTL`]: store the response for this many seconds, whatever its own
//!   `Cache-Control` says (0: do not store).
//!
//! From the response hook (on the response from the origin):
//! - [`TTL`]: store it for this many seconds instead;
//! - [`CONTROL`] = [`NO_STORE`]: do not store it.

/// The cache key a request guest chose.
pub const KEY: &str = "outpost-cache-key";
/// A lifetime in seconds a guest set.
pub const TTL: &str = "outpost-cache-ttl";
/// `bypass` (request) or `no-store` (response).
pub const CONTROL: &str = "outpost-cache";
/// [`CONTROL`]'s value that keeps a request away from the cache.
pub const BYPASS: &str = "bypass";
/// [`CONTROL`]'s value that keeps a response out of the cache.
pub const NO_STORE: &str = "no-store";
/// Every field a guest steers the cache with.
pub const FIELDS: [&str; 3] = [KEY, TTL, CONTROL];
