//! The console's pages, one module per section; each handler reads through the shared
//! query modules and renders with [`super::html`].

pub mod dead_letters;
pub mod drift;
pub mod overview;
pub mod reports;
pub mod sign_in;
