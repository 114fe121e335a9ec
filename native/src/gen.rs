//! Generated from proto/ by scripts/gen-proto.sh (prost): do not edit.
include!("gen/coral.sdk.v1.rs");
