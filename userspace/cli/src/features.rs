//! `features`: what the kernel says an interface can do for tickgate.

use anyhow::{Context as _, Result};
use serde::Serialize;
use tickgate::{
    steer::{features as netdev, kfunc},
    sys,
};

/// The answer, in the shape of `--json`.
#[derive(Debug, Serialize)]
struct Features {
    interface: String,
    ifindex: u32,
    driver: Option<String>,
    kernel: String,
    /// XDP in the driver (`--mode native`).
    native_xdp: bool,
    /// AF_XDP zero-copy.
    af_xdp_zero_copy: bool,
    /// The driver implements the RX-timestamp metadata kfunc (null: kernel too old to say).
    rx_timestamp_metadata: Option<bool>,
    /// The running kernel exports `bpf_xdp_metadata_rx_timestamp` in its BTF.
    rx_timestamp_kfunc_in_kernel: bool,
    /// The raw netdev-family answer.
    netdev: netdev::NetdevFeatures,
}

pub fn features(iface: &str, json: bool) -> Result<()> {
    let ifindex = sys::if_nametoindex(iface).map_err(|_| {
        anyhow::anyhow!("interface {iface} not found in this network namespace ('ip link show' lists them)")
    })?;
    let netdev = netdev::query(ifindex).with_context(|| format!("asking the kernel about {iface}"))?;
    let f = Features {
        interface: iface.to_owned(),
        ifindex,
        driver: sys::driver_name(iface).ok(),
        kernel: netdev::kernel_release().unwrap_or_default(),
        native_xdp: netdev.xdp.basic,
        af_xdp_zero_copy: netdev.xdp.xsk_zerocopy,
        rx_timestamp_metadata: netdev.rx_metadata.as_ref().map(|m| m.timestamp),
        rx_timestamp_kfunc_in_kernel: kfunc::rx_timestamp_btf_id().is_ok(),
        netdev,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(());
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "{} (ifindex {}, driver {}), kernel {}",
        f.interface,
        f.ifindex,
        f.driver.as_deref().unwrap_or("unknown"),
        f.kernel
    );
    println!(
        "  native XDP:             {}{}",
        yes(f.native_xdp),
        if f.native_xdp { "" } else { "  (use --mode skb)" }
    );
    println!(
        "  AF_XDP zero-copy:       {}{}",
        yes(f.af_xdp_zero_copy),
        if f.af_xdp_zero_copy { "" } else { "  (copy mode will be used)" }
    );
    let ts = match f.rx_timestamp_metadata {
        Some(true) if f.rx_timestamp_kfunc_in_kernel => {
            "yes (the driver implements it; whether it yields a hardware stamp depends on the NIC and its timestamping config)"
        }
        Some(true) => "driver yes, but the kernel BTF lacks the kfunc",
        Some(false) => "no (timestamps come from the XDP clock)",
        None => "unknown (kernel older than 6.8 does not report it)",
    };
    println!("  RX timestamp kfunc:     {ts}");
    Ok(())
}
