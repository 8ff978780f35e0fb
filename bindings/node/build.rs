//! Linker settings a Node addon needs (symbols resolved from the host process on macOS).

fn main() {
    napi_build::setup();
}
