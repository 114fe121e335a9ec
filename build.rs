fn main() {
    // The C side of the layout test in native/src/event.rs.
    println!("cargo:rerun-if-changed=bpf/coral_event.h");
    println!("cargo:rerun-if-changed=native/layout/coral_event_layout.c");
    cc::Build::new()
        .file("native/layout/coral_event_layout.c")
        .compile("coral_event_layout");
}
