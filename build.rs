fn main() {
    // The C side of the layout test in native/src/event.rs.
    println!("cargo:rerun-if-changed=bpf/coral_event.h");
    println!("cargo:rerun-if-changed=native/layout/coral_event_layout.c");
    cc::Build::new()
        .file("native/layout/coral_event_layout.c")
        .compile("coral_event_layout");

    #[cfg(feature = "regen-proto")]
    prost_build::Config::new()
        .out_dir("native/src/gen")
        .compile_protos(&["proto/coral/sdk/v1/sdk.proto"], &["proto"])
        .expect("protoc failed on proto/");
}
