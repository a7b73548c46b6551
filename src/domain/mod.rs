//! The royalty domain: the line, its identifiers, the rules a royalty manager applies and
//! the identity key. Pure code: no I/O.

pub mod currency;
pub mod gtin;
pub mod isrc;
pub mod key;
pub mod line;
pub mod rejection;
pub mod rules;
pub mod validate;

pub use key::LineKey;
pub use line::{DecodedLine, LineType, RoyaltyLine};
pub use validate::{Rejection, Violation, validate};
