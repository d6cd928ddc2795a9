//! The fleet: the `Instance` model, fetching it from EC2 and SSM, merging the two,
//! the SSM-only ping check that keeps it current, and the on-disk cache that lets
//! the picker start instantly.

pub mod cache;
pub mod describe;
pub mod inventory;
pub mod merge;
pub mod model;
pub mod ping;
pub mod reach;
pub mod tags;

pub use cache::{Cache, CacheFile, Cached, Head, Summary};
pub use inventory::{fetch, FetchError, Inventory};
pub use model::{several_accounts, sort_fleet, Eice, EiceEndpoint, Instance, Ping};
pub use reach::{Reach, Via};
pub use tags::Tags;
