//! Compiles `proto/tickgate.proto` with protox (pure Rust, no `protoc`) and generates the prost
//! types into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/tickgate.proto";
    println!("cargo::rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
