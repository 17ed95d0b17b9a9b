//! The committed `include/posture.h` must be exactly what the pinned cbindgen generates
//! from the code: a C consumer compiles against the header, so a drift is an ABI bug.

use std::path::Path;

fn version_macros() -> String {
    format!(
        "#define POSTURE_VERSION_MAJOR {}\n#define POSTURE_VERSION_MINOR {}\n#define POSTURE_VERSION_PATCH {}\n#define POSTURE_VERSION_STRING \"{}\"\n",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate() -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    config.after_includes = Some(version_macros());
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .unwrap();
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn committed_header_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/posture.h");
    let generated = generate();
    if std::env::var_os("POSTURE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/posture.h is out of date; regenerate it with\n  \
         POSTURE_UPDATE_HEADER=1 cargo nextest run -p posture-ffi --test header\n\
         --- generated ---\n{generated}"
    );
}
