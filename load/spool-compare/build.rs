//! Puts the locked versions of redb and fjall in the binary, for its header.
fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for name in ["redb", "fjall"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        let version = lock
            .find(&needle)
            .map(|at| &lock[at + needle.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        println!("cargo:rustc-env={}_VERSION={version}", name.to_uppercase());
    }
}
