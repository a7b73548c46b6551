//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the files it
//! found at compile time, and cargo would otherwise only track the files already embedded
//! (an incremental build then runs the old list of migrations).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
