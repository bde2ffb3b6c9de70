//! Asks the kernel which XDP and AF_XDP features a network device has, over the `netdev`
//! generic-netlink family.
//!
//! This is the kernel's own answer (what `ynl --family netdev --do dev-get` prints), not a guess
//! from the driver name: native XDP, AF_XDP zero-copy, and the XDP RX-metadata kfuncs that
//! tickgate's NIC timestamps depend on.
//!
//! # Minimum kernel version
//!
//! Linux 6.3 for the family and `xdp-features` (commit d3d854fd6a1d, "netdev-genl: create a simple
//! family for netdev stuff"). Later attributes are reported as `None` on kernels that predate them:
//! `xdp-zc-max-segs` 6.6, `xdp-rx-metadata-features` 6.7 (commit a9c2a6080d; the `vlan-tag` bit
//! 6.8), `xsk-features` 6.8 (commit 48eb03dd2630). Attribute numbers and flag bits are those of
//! `include/uapi/linux/netdev.h`, generated from `Documentation/netlink/specs/netdev.yaml`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use serde::Serialize;

use crate::sys::{
    self,
    netlink::{
        Attrs, ReplyError, attr_u32, attr_u64, find_reply, genl_request, get_family_request, parse_family,
    },
};

// The netdev family, from include/uapi/linux/netdev.h.
const NETDEV_FAMILY_NAME: &[u8] = b"netdev\0";
const NETDEV_FAMILY_VERSION: u8 = 1;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;
const NETDEV_A_DEV_XDP_RX_METADATA_FEATURES: u16 = 5;
const NETDEV_A_DEV_XSK_FEATURES: u16 = 6;

const SEQ_GET_FAMILY: u32 = 1;
const SEQ_DEV_GET: u32 = 2;
/// Both replies fit in a page; the headroom only matters if a future kernel grows them.
const RECV_BUF_LEN: usize = 32 * 1024;
/// Datagrams read while waiting for one reply before giving up; a unicast request gets one.
const MAX_DATAGRAMS: usize = 16;

/// `enum netdev_xdp_act`: which XDP actions and modes the driver implements (`xdp-features`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XdpFeatures {
    /// `basic`: the driver runs XDP natively (ABORTED, DROP, PASS, TX), so `--mode native` works.
    /// Without it only skb (generic) mode is available.
    pub basic: bool,
    /// `redirect`: the driver supports `XDP_REDIRECT`, which AF_XDP sockets need in native mode.
    pub redirect: bool,
    /// `ndo-xmit`: the driver implements `ndo_xdp_xmit` (it can be a redirect target).
    pub ndo_xmit: bool,
    /// `xsk-zerocopy`: AF_XDP sockets can bind in zero-copy mode.
    pub xsk_zerocopy: bool,
    /// `hw-offload`: XDP programs can be offloaded to the NIC.
    pub hw_offload: bool,
    /// `rx-sg`: the driver passes multi-buffer (non-linear) frames to XDP on receive.
    pub rx_sg: bool,
    /// `ndo-xmit-sg`: `ndo_xdp_xmit` accepts multi-buffer frames.
    pub ndo_xmit_sg: bool,
    /// The raw bitmask, including bits newer than this build knows.
    pub raw: u64,
}

impl XdpFeatures {
    /// Decodes the kernel's `xdp-features` bitmask.
    pub const fn from_bits(raw: u64) -> Self {
        Self {
            basic: raw & 1 != 0,
            redirect: raw & 2 != 0,
            ndo_xmit: raw & 4 != 0,
            xsk_zerocopy: raw & 8 != 0,
            hw_offload: raw & 16 != 0,
            rx_sg: raw & 32 != 0,
            ndo_xmit_sg: raw & 64 != 0,
            raw,
        }
    }
}

/// `enum netdev_xdp_rx_metadata`: which XDP RX-metadata kfuncs the driver implements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RxMetadataFeatures {
    /// `timestamp`: `bpf_xdp_metadata_rx_timestamp()` returns the NIC's receive timestamp.
    pub timestamp: bool,
    /// `hash`: `bpf_xdp_metadata_rx_hash()` returns the NIC's RSS hash.
    pub hash: bool,
    /// `vlan-tag`: `bpf_xdp_metadata_rx_vlan_tag()` returns the stripped VLAN tag.
    pub vlan_tag: bool,
    /// The raw bitmask, including bits newer than this build knows.
    pub raw: u64,
}

impl RxMetadataFeatures {
    /// Decodes the kernel's `xdp-rx-metadata-features` bitmask.
    pub const fn from_bits(raw: u64) -> Self {
        Self { timestamp: raw & 1 != 0, hash: raw & 2 != 0, vlan_tag: raw & 4 != 0, raw }
    }
}

/// `enum netdev_xsk_flags`: which AF_XDP TX-metadata offloads the driver implements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XskFeatures {
    /// `tx-timestamp`: the NIC writes a transmit timestamp into the TX metadata on completion.
    pub tx_timestamp: bool,
    /// `tx-checksum`: the NIC computes the L4 checksum requested in the TX metadata.
    pub tx_checksum: bool,
    /// `tx-launch-time-fifo`: the NIC holds a frame until the launch time in its TX metadata.
    pub tx_launch_time_fifo: bool,
    /// The raw bitmask, including bits newer than this build knows.
    pub raw: u64,
}

impl XskFeatures {
    /// Decodes the kernel's `xsk-features` bitmask.
    pub const fn from_bits(raw: u64) -> Self {
        Self { tx_timestamp: raw & 1 != 0, tx_checksum: raw & 2 != 0, tx_launch_time_fifo: raw & 4 != 0, raw }
    }
}

/// The kernel's `dev-get` answer for one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NetdevFeatures {
    /// The device's ifindex, as echoed by the kernel.
    pub ifindex: u32,
    /// XDP actions and modes (`xdp-features`, Linux 6.3).
    pub xdp: XdpFeatures,
    /// Most fragments a zero-copy AF_XDP frame may span (`xdp-zc-max-segs`, Linux 6.6); the
    /// kernel sends it only for devices with `xsk_zerocopy`.
    pub xdp_zc_max_segs: Option<u32>,
    /// XDP RX-metadata kfuncs (`xdp-rx-metadata-features`, Linux 6.7); `None` if the kernel
    /// predates the attribute, so support is unknown rather than absent.
    pub rx_metadata: Option<RxMetadataFeatures>,
    /// AF_XDP TX-metadata offloads (`xsk-features`, Linux 6.8); `None` if the kernel predates it.
    pub xsk: Option<XskFeatures>,
}

/// Why the kernel could not tell us a device's features.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// The kernel has no `netdev` generic-netlink family: it is older than Linux 6.3.
    #[error(
        "the kernel has no `netdev` generic-netlink family, so it cannot report XDP features \
         (running {kernel}; Linux 6.3 or newer is needed): upgrade the kernel, or use `--mode skb`, \
         which works without driver support"
    )]
    FamilyMissing {
        /// The running kernel's release (`uname -r`), or `an unknown kernel`.
        kernel: String,
    },
    /// No device with this ifindex exists in the caller's network namespace (`ENODEV`).
    #[error(
        "no network device has ifindex {ifindex} in this network namespace: check the interface \
         name with `ip link`, and run tickgate in the namespace that owns the interface"
    )]
    DeviceUnknown {
        /// The ifindex that was asked about.
        ifindex: u32,
    },
    /// The kernel refused a request with an error other than the ones above.
    #[error("the kernel rejected the netlink {request} request: {source}{}", ext_ack_suffix(.message))]
    Rejected {
        /// Which request: `CTRL_CMD_GETFAMILY` or `NETDEV_CMD_DEV_GET`.
        request: &'static str,
        /// The errno the kernel returned.
        source: io::Error,
        /// The kernel's extended-ack explanation, when it gave one.
        message: Option<String>,
    },
    /// A syscall on the generic-netlink socket failed.
    #[error(
        "{call} on a NETLINK_GENERIC socket failed: {source} (a seccomp or container policy that \
         blocks netlink sockets causes this)"
    )]
    SyscallError {
        /// The syscall that failed.
        call: &'static str,
        /// The error it returned.
        source: io::Error,
    },
    /// The kernel's reply did not parse.
    #[error(
        "the kernel's netlink {request} reply is malformed ({reason}); this is a tickgate bug, \
         please report it with the output of `uname -r`"
    )]
    MalformedReply {
        /// Which request the reply answered.
        request: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
}

fn ext_ack_suffix(message: &Option<String>) -> String {
    message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
}

/// The running kernel's release string (`uname -r`).
pub fn kernel_release() -> io::Result<String> {
    sys::uname::release()
}

/// Asks the kernel for the XDP, AF_XDP and RX-metadata features of the device `ifindex`.
///
/// Needs no privileges. The device is looked up in the caller's network namespace.
pub fn query(ifindex: u32) -> Result<NetdevFeatures, NetdevError> {
    let mut socket = Socket::open()?;
    query_with(&mut socket, ifindex)
}

/// The kernel side of a request-reply exchange: the real socket, or a fake in tests.
trait Transport {
    fn send(&mut self, datagram: &[u8]) -> Result<(), NetdevError>;
    /// Receives one datagram into `buf` and returns its full length, which may exceed `buf.len()`.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, NetdevError>;
}

struct Socket {
    fd: OwnedFd,
}

impl Socket {
    fn open() -> Result<Self, NetdevError> {
        let fd =
            sys::netlink::socket().map_err(|source| NetdevError::SyscallError { call: "socket", source })?;
        sys::netlink::bind(fd.as_fd())
            .map_err(|source| NetdevError::SyscallError { call: "bind", source })?;
        // Best effort: NETLINK_EXT_ACK (4.12) only adds the kernel's explanation to errors, and
        // NETLINK_CAP_ACK (4.3) only keeps our request from being echoed back in them.
        let _ = sys::netlink::set_netlink_option(fd.as_fd(), libc::NETLINK_EXT_ACK, 1);
        let _ = sys::netlink::set_netlink_option(fd.as_fd(), libc::NETLINK_CAP_ACK, 1);
        Ok(Self { fd })
    }
}

impl Transport for Socket {
    fn send(&mut self, datagram: &[u8]) -> Result<(), NetdevError> {
        let sent = sys::netlink::send(self.fd.as_fd(), datagram)
            .map_err(|source| NetdevError::SyscallError { call: "sendto", source })?;
        if sent != datagram.len() {
            let source = io::Error::new(io::ErrorKind::WriteZero, "netlink request was sent only in part");
            return Err(NetdevError::SyscallError { call: "sendto", source });
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, NetdevError> {
        sys::netlink::recv(self.fd.as_fd(), buf)
            .map_err(|source| NetdevError::SyscallError { call: "recv", source })
    }
}

fn query_with(transport: &mut impl Transport, ifindex: u32) -> Result<NetdevFeatures, NetdevError> {
    let family = resolve_family(transport)?;
    let request = dev_get_request(family, SEQ_DEV_GET, ifindex);
    exchange(transport, &request, |datagram| parse_dev_get(datagram, family, SEQ_DEV_GET, ifindex)).map_err(
        |err| match err {
            Exchange::Kernel { errno: libc::ENODEV, .. } => NetdevError::DeviceUnknown { ifindex },
            other => other.into_error("NETDEV_CMD_DEV_GET"),
        },
    )
}

fn resolve_family(transport: &mut impl Transport) -> Result<u16, NetdevError> {
    let request = get_family_request(SEQ_GET_FAMILY, NETDEV_FAMILY_NAME);
    exchange(transport, &request, |datagram| parse_family(datagram, SEQ_GET_FAMILY, b"netdev")).map_err(
        |err| match err {
            Exchange::Kernel { errno: libc::ENOENT, .. } => NetdevError::FamilyMissing {
                kernel: kernel_release().unwrap_or_else(|_| String::from("an unknown kernel")),
            },
            other => other.into_error("CTRL_CMD_GETFAMILY"),
        },
    )
}

/// How one request-reply exchange failed, before it is given the request's context.
#[derive(Debug)]
enum Exchange {
    /// The kernel answered with `NLMSG_ERROR` and a non-zero errno.
    Kernel {
        errno: i32,
        message: Option<String>,
    },
    Malformed(&'static str),
    Failed(NetdevError),
}

impl Exchange {
    fn into_error(self, request: &'static str) -> NetdevError {
        match self {
            Self::Kernel { errno, message } => {
                NetdevError::Rejected { request, source: io::Error::from_raw_os_error(errno), message }
            }
            Self::Malformed(reason) => NetdevError::MalformedReply { request, reason },
            Self::Failed(err) => err,
        }
    }
}

impl From<ReplyError> for Exchange {
    fn from(err: ReplyError) -> Self {
        match err {
            ReplyError::Kernel { errno, message } => Self::Kernel { errno, message },
            ReplyError::Malformed(reason) => Self::Malformed(reason),
        }
    }
}

/// Sends `request`, then reads datagrams until `parse` finds the reply to it in one.
fn exchange<T>(
    transport: &mut impl Transport,
    request: &[u8],
    mut parse: impl FnMut(&[u8]) -> Result<Option<T>, ReplyError>,
) -> Result<T, Exchange> {
    transport.send(request).map_err(Exchange::Failed)?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    for _ in 0..MAX_DATAGRAMS {
        let len = transport.recv(&mut buf).map_err(Exchange::Failed)?;
        let datagram = buf.get(..len).ok_or(Exchange::Malformed("reply larger than the receive buffer"))?;
        if let Some(reply) = parse(datagram)? {
            return Ok(reply);
        }
    }
    Err(Exchange::Malformed("no reply to the request"))
}

/// Parses the `NETDEV_CMD_DEV_GET` reply for request `seq` about `ifindex`.
fn parse_dev_get(
    datagram: &[u8],
    family: u16,
    seq: u32,
    ifindex: u32,
) -> Result<Option<NetdevFeatures>, ReplyError> {
    let Some(reply) = find_reply(datagram, seq)? else {
        return Ok(None);
    };
    if reply.ty != family {
        return Err(ReplyError::Malformed("dev-get reply not from the netdev family"));
    }
    let mut xdp = None;
    let mut features = NetdevFeatures {
        ifindex,
        xdp: XdpFeatures::default(),
        xdp_zc_max_segs: None,
        rx_metadata: None,
        xsk: None,
    };
    for attr in (Attrs { rest: reply.attrs }) {
        let (ty, bytes) = attr.map_err(ReplyError::Malformed)?;
        match ty {
            NETDEV_A_DEV_IFINDEX if attr_u32(bytes)? != ifindex => {
                return Err(ReplyError::Malformed("dev-get reply is about another ifindex"));
            }
            NETDEV_A_DEV_XDP_FEATURES => xdp = Some(XdpFeatures::from_bits(attr_u64(bytes)?)),
            NETDEV_A_DEV_XDP_ZC_MAX_SEGS => features.xdp_zc_max_segs = Some(attr_u32(bytes)?),
            NETDEV_A_DEV_XDP_RX_METADATA_FEATURES => {
                features.rx_metadata = Some(RxMetadataFeatures::from_bits(attr_u64(bytes)?));
            }
            NETDEV_A_DEV_XSK_FEATURES => features.xsk = Some(XskFeatures::from_bits(attr_u64(bytes)?)),
            // NETDEV_A_DEV_PAD, and attributes newer than this build.
            _ => {}
        }
    }
    features.xdp = xdp.ok_or(ReplyError::Malformed("dev-get reply without xdp-features"))?;
    Ok(Some(features))
}

fn dev_get_request(family: u16, seq: u32, ifindex: u32) -> Vec<u8> {
    genl_request(
        family,
        seq,
        NETDEV_CMD_DEV_GET,
        NETDEV_FAMILY_VERSION,
        NETDEV_A_DEV_IFINDEX,
        &ifindex.to_ne_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netlink::*;

    const FAMILY: u16 = 0x1d;

    /// An attribute to craft: type and payload.
    type Attr<'a> = (u16, &'a [u8]);

    fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&4242u32.to_ne_bytes());
        buf.extend_from_slice(payload);
        buf.resize(align4(buf.len()), 0);
        buf
    }

    fn genl(cmd: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut buf = vec![cmd, 1, 0, 0];
        for (ty, payload) in attrs {
            push_attr(&mut buf, *ty, payload);
        }
        buf
    }

    fn error(seq: u32, errno: i32, flags: u16, tlvs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut payload = (-errno).to_ne_bytes().to_vec();
        // The capped echo of the request header.
        payload.extend_from_slice(&nlmsg(FAMILY, NLM_F_REQUEST, seq, &[])[..NLMSG_HDRLEN]);
        for (ty, bytes) in tlvs {
            push_attr(&mut payload, *ty, bytes);
        }
        nlmsg(NLMSG_ERROR, flags, seq, &payload)
    }

    /// A dev-get reply as a 6.18 kernel sends it for a zero-copy NIC with every feature.
    fn full_reply(ifindex: u32) -> Vec<u8> {
        let payload = genl(
            NETDEV_CMD_DEV_GET,
            &[
                (NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes()),
                (NETDEV_A_DEV_XDP_FEATURES, &0x4fu64.to_ne_bytes()),
                (NETDEV_A_DEV_XDP_RX_METADATA_FEATURES, &7u64.to_ne_bytes()),
                (NETDEV_A_DEV_XSK_FEATURES, &3u64.to_ne_bytes()),
                (NETDEV_A_DEV_XDP_ZC_MAX_SEGS, &17u32.to_ne_bytes()),
            ],
        );
        nlmsg(FAMILY, 0, SEQ_DEV_GET, &payload)
    }

    #[test]
    fn dev_get_reply_decodes_every_attribute() {
        let features = parse_dev_get(&full_reply(3), FAMILY, SEQ_DEV_GET, 3).unwrap().unwrap();
        assert_eq!(
            features,
            NetdevFeatures {
                ifindex: 3,
                xdp: XdpFeatures {
                    basic: true,
                    redirect: true,
                    ndo_xmit: true,
                    xsk_zerocopy: true,
                    hw_offload: false,
                    rx_sg: false,
                    ndo_xmit_sg: true,
                    raw: 0x4f,
                },
                xdp_zc_max_segs: Some(17),
                rx_metadata: Some(RxMetadataFeatures { timestamp: true, hash: true, vlan_tag: true, raw: 7 }),
                xsk: Some(XskFeatures {
                    tx_timestamp: true,
                    tx_checksum: true,
                    tx_launch_time_fifo: false,
                    raw: 3
                }),
            }
        );
    }

    #[test]
    fn old_kernel_reply_leaves_newer_attributes_unknown() {
        // Linux 6.3-6.5: ifindex and xdp-features only, with a pad attribute and a nested flag.
        let payload = genl(
            NETDEV_CMD_DEV_GET,
            &[
                (NETDEV_A_DEV_IFINDEX, &5u32.to_ne_bytes()),
                (2, &[]),
                (NETDEV_A_DEV_XDP_FEATURES | (1 << 14), &0x23u64.to_ne_bytes()),
            ],
        );
        let features =
            parse_dev_get(&nlmsg(FAMILY, 0, SEQ_DEV_GET, &payload), FAMILY, SEQ_DEV_GET, 5).unwrap().unwrap();
        assert_eq!(features.xdp, XdpFeatures::from_bits(0x23));
        assert!(
            features.xdp.basic && features.xdp.redirect && features.xdp.rx_sg && !features.xdp.xsk_zerocopy
        );
        assert_eq!((features.xdp_zc_max_segs, features.rx_metadata, features.xsk), (None, None, None));
    }

    #[test]
    fn unknown_bits_and_attributes_are_kept_or_skipped() {
        let payload = genl(
            NETDEV_CMD_DEV_GET,
            &[
                (NETDEV_A_DEV_XDP_FEATURES, &(1u64 << 40).to_ne_bytes()),
                (99, b"future"),
                (NETDEV_A_DEV_XSK_FEATURES, &8u64.to_ne_bytes()),
            ],
        );
        let features =
            parse_dev_get(&nlmsg(FAMILY, 0, SEQ_DEV_GET, &payload), FAMILY, SEQ_DEV_GET, 1).unwrap().unwrap();
        assert_eq!(features.xdp.raw, 1 << 40);
        assert!(!features.xdp.basic);
        assert_eq!(features.xsk, Some(XskFeatures { raw: 8, ..XskFeatures::default() }));
    }

    #[test]
    fn family_reply_decodes_the_id() {
        let payload = genl(
            1,
            &[
                (CTRL_ATTR_FAMILY_NAME, b"netdev\0"),
                (CTRL_ATTR_FAMILY_ID, &FAMILY.to_ne_bytes()),
                (3, &1u32.to_ne_bytes()),
            ],
        );
        assert_eq!(
            parse_family(&nlmsg(GENL_ID_CTRL, 0, SEQ_GET_FAMILY, &payload), SEQ_GET_FAMILY, b"netdev"),
            Ok(Some(FAMILY))
        );
    }

    #[test]
    fn family_reply_problems_are_errors() {
        let cases: [(&[Attr<'_>], &str); 3] = [
            (&[(CTRL_ATTR_FAMILY_NAME, b"netdev\0")], "family reply without a family id"),
            (&[(CTRL_ATTR_FAMILY_ID, &7u32.to_ne_bytes())], "family id is not a u16"),
            (
                &[(CTRL_ATTR_FAMILY_NAME, b"nl80211\0"), (CTRL_ATTR_FAMILY_ID, &FAMILY.to_ne_bytes())],
                "family reply names another family",
            ),
        ];
        for (attrs, reason) in cases {
            let datagram = nlmsg(GENL_ID_CTRL, 0, SEQ_GET_FAMILY, &genl(1, attrs));
            assert_eq!(
                parse_family(&datagram, SEQ_GET_FAMILY, b"netdev"),
                Err(ReplyError::Malformed(reason))
            );
        }
    }

    #[test]
    fn other_sequence_numbers_are_skipped() {
        let stale = nlmsg(FAMILY, 0, 77, &genl(1, &[]));
        assert_eq!(parse_dev_get(&stale, FAMILY, SEQ_DEV_GET, 3), Ok(None));
        let mut both = stale;
        both.extend_from_slice(&full_reply(3));
        assert_eq!(parse_dev_get(&both, FAMILY, SEQ_DEV_GET, 3).unwrap().unwrap().xdp_zc_max_segs, Some(17));
    }

    #[test]
    fn errors_carry_errno_and_extended_ack() {
        let datagram = error(
            SEQ_DEV_GET,
            libc::EINVAL,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            &[(NLMSGERR_ATTR_MSG, b"bad thing\0"), (NLMSGERR_ATTR_MISS_TYPE, &1u32.to_ne_bytes())],
        );
        assert_eq!(
            parse_dev_get(&datagram, FAMILY, SEQ_DEV_GET, 3),
            Err(ReplyError::Kernel {
                errno: libc::EINVAL,
                message: Some("bad thing; missing attribute 1".into())
            })
        );
        let plain = error(SEQ_DEV_GET, libc::ENODEV, NLM_F_CAPPED, &[]);
        assert_eq!(
            parse_dev_get(&plain, FAMILY, SEQ_DEV_GET, 3),
            Err(ReplyError::Kernel { errno: libc::ENODEV, message: None })
        );
        let ack = error(SEQ_DEV_GET, 0, NLM_F_CAPPED, &[]);
        assert_eq!(
            parse_dev_get(&ack, FAMILY, SEQ_DEV_GET, 3),
            Err(ReplyError::Malformed("acknowledgement without a reply"))
        );
    }

    #[test]
    fn uncapped_error_skips_the_echoed_request() {
        // Without NETLINK_CAP_ACK the kernel echoes the whole request before the TLVs.
        let request = dev_get_request(FAMILY, SEQ_DEV_GET, 3);
        let mut payload = (-libc::EPERM).to_ne_bytes().to_vec();
        payload.extend_from_slice(&request);
        push_attr(&mut payload, NLMSGERR_ATTR_MSG, b"nope\0");
        let datagram = nlmsg(NLMSG_ERROR, NLM_F_ACK_TLVS, SEQ_DEV_GET, &payload);
        assert_eq!(
            parse_dev_get(&datagram, FAMILY, SEQ_DEV_GET, 3),
            Err(ReplyError::Kernel { errno: libc::EPERM, message: Some("nope".into()) })
        );
    }

    #[test]
    fn malformed_replies_are_named() {
        let reply = |attrs: &[(u16, &[u8])]| nlmsg(FAMILY, 0, SEQ_DEV_GET, &genl(1, attrs));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (reply(&[(NETDEV_A_DEV_IFINDEX, &3u32.to_ne_bytes())]), "dev-get reply without xdp-features"),
            (reply(&[(NETDEV_A_DEV_IFINDEX, &4u32.to_ne_bytes())]), "dev-get reply is about another ifindex"),
            (reply(&[(NETDEV_A_DEV_XDP_FEATURES, &1u32.to_ne_bytes())]), "u64 attribute is not 8 bytes"),
            (reply(&[(NETDEV_A_DEV_XDP_ZC_MAX_SEGS, &1u64.to_ne_bytes())]), "u32 attribute is not 4 bytes"),
            (nlmsg(FAMILY + 1, 0, SEQ_DEV_GET, &genl(1, &[])), "dev-get reply not from the netdev family"),
            (nlmsg(FAMILY, 0, SEQ_DEV_GET, &[1, 1]), "reply shorter than a generic-netlink header"),
            (nlmsg(NLMSG_DONE, 0, SEQ_DEV_GET, &[0; 4]), "NLMSG_DONE where a reply was expected"),
            (nlmsg(NLMSG_ERROR, 0, SEQ_DEV_GET, &[0; 2]), "NLMSG_ERROR shorter than its error code"),
            (vec![0; 8], "datagram shorter than a netlink header"),
        ];
        for (datagram, reason) in cases {
            assert_eq!(
                parse_dev_get(&datagram, FAMILY, SEQ_DEV_GET, 3),
                Err(ReplyError::Malformed(reason)),
                "{reason}"
            );
        }
        // Attribute length below its header, and past the end of the message.
        let mut short = reply(&[]);
        short.extend_from_slice(&[2, 0, 3, 0]);
        let len = short.len() as u32;
        short[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(
            parse_dev_get(&short, FAMILY, SEQ_DEV_GET, 3),
            Err(ReplyError::Malformed("attribute shorter than its header"))
        );
        let mut long = reply(&[]);
        long.extend_from_slice(&[12, 0, 3, 0, 0, 0, 0, 0]);
        let len = long.len() as u32;
        long[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(
            parse_dev_get(&long, FAMILY, SEQ_DEV_GET, 3),
            Err(ReplyError::Malformed("attribute runs past the end of its message"))
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let reply = full_reply(3);
        for len in 1..reply.len() {
            assert!(parse_dev_get(&reply[..len], FAMILY, SEQ_DEV_GET, 3).is_err(), "prefix of {len} bytes");
        }
        assert_eq!(parse_dev_get(&[], FAMILY, SEQ_DEV_GET, 3), Ok(None));
    }

    #[test]
    fn random_and_mutated_replies_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
        let seeds = [
            full_reply(3),
            error(SEQ_DEV_GET, libc::ENODEV, NLM_F_CAPPED | NLM_F_ACK_TLVS, &[(NLMSGERR_ATTR_MSG, b"x\0")]),
        ];
        let mut parsed = 0;
        for round in 0..20_000 {
            let datagram: Vec<u8> = if round % 2 == 0 {
                (0..rng.usize(..96)).map(|_| rng.u64(..) as u8).collect()
            } else {
                let mut d = seeds[rng.usize(..seeds.len())].clone();
                for _ in 0..=rng.usize(..4) {
                    let at = rng.usize(..d.len());
                    d[at] = rng.u64(..) as u8;
                }
                d.truncate(rng.usize(..d.len() + 1));
                d
            };
            // Half the noise claims our sequence number, so it reaches the attribute walker.
            let mut datagram = datagram;
            if round % 4 < 2 && datagram.len() >= 12 {
                datagram[8..12].copy_from_slice(&SEQ_DEV_GET.to_ne_bytes());
            }
            if parse_dev_get(&datagram, FAMILY, SEQ_DEV_GET, 3).is_ok_and(|f| f.is_some()) {
                parsed += 1;
            }
            let _ = parse_family(&datagram, SEQ_DEV_GET, b"netdev");
        }
        // Mutations of the valid reply sometimes leave it valid: the walker was reached.
        assert!(parsed > 0);
    }

    #[test]
    fn requests_have_the_documented_layout() {
        let request = dev_get_request(FAMILY, 9, 0x0102_0304);
        let mut expected = 28u32.to_ne_bytes().to_vec();
        expected.extend_from_slice(&FAMILY.to_ne_bytes());
        expected.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        expected.extend_from_slice(&9u32.to_ne_bytes());
        expected.extend_from_slice(&0u32.to_ne_bytes());
        expected.extend_from_slice(&[NETDEV_CMD_DEV_GET, 1, 0, 0, 8, 0, 1, 0]);
        expected.extend_from_slice(&0x0102_0304u32.to_ne_bytes());
        assert_eq!(request, expected);
        // "netdev\0" is 7 bytes: an 11-byte attribute padded to 12.
        let family = get_family_request(1, NETDEV_FAMILY_NAME);
        assert_eq!(family.len(), NLMSG_HDRLEN + GENL_HDRLEN + 12);
        assert_eq!(&family[20..31], b"\x0b\x00\x02\x00netdev\0");
    }

    /// A scripted kernel: answers each request with the datagrams `reply` returns for it.
    struct FakeKernel<F> {
        reply: F,
        queue: Vec<Vec<u8>>,
    }

    impl<F: FnMut(&[u8]) -> Vec<Vec<u8>>> Transport for FakeKernel<F> {
        fn send(&mut self, datagram: &[u8]) -> Result<(), NetdevError> {
            self.queue = (self.reply)(datagram);
            self.queue.reverse();
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, NetdevError> {
            let datagram = self.queue.pop().unwrap_or_else(|| nlmsg(NLMSG_NOOP, 0, 0, &[]));
            buf[..datagram.len()].copy_from_slice(&datagram);
            Ok(datagram.len())
        }
    }

    fn fake(reply: impl FnMut(&[u8]) -> Vec<Vec<u8>>) -> FakeKernel<impl FnMut(&[u8]) -> Vec<Vec<u8>>> {
        FakeKernel { reply, queue: Vec::new() }
    }

    fn family_ok(request: &[u8]) -> Option<Vec<u8>> {
        (read_u16(request, 4) == Some(GENL_ID_CTRL)).then(|| {
            nlmsg(GENL_ID_CTRL, 0, SEQ_GET_FAMILY, &genl(1, &[(CTRL_ATTR_FAMILY_ID, &FAMILY.to_ne_bytes())]))
        })
    }

    #[test]
    fn query_resolves_the_family_then_asks_for_the_device() {
        let mut kernel = fake(|request| {
            if let Some(reply) = family_ok(request) {
                return vec![reply];
            }
            assert_eq!(request, dev_get_request(FAMILY, SEQ_DEV_GET, 3));
            // A stale message first, then the reply.
            vec![nlmsg(FAMILY, 0, 1234, &genl(1, &[])), full_reply(3)]
        });
        assert_eq!(query_with(&mut kernel, 3).unwrap().xdp_zc_max_segs, Some(17));
    }

    #[test]
    fn missing_family_names_the_kernel() {
        let mut kernel = fake(|_| vec![error(SEQ_GET_FAMILY, libc::ENOENT, NLM_F_CAPPED, &[])]);
        let err = query_with(&mut kernel, 3).unwrap_err();
        assert!(
            matches!(&err, NetdevError::FamilyMissing { kernel } if *kernel == kernel_release().unwrap()),
            "{err}"
        );
        assert!(err.to_string().contains("Linux 6.3"));
    }

    #[test]
    fn unknown_device_and_other_rejections() {
        let mut kernel = fake(|r| {
            family_ok(r)
                .map_or_else(|| vec![error(SEQ_DEV_GET, libc::ENODEV, NLM_F_CAPPED, &[])], |f| vec![f])
        });
        assert!(matches!(query_with(&mut kernel, 3), Err(NetdevError::DeviceUnknown { ifindex: 3 })));

        let mut kernel = fake(|r| {
            family_ok(r).map_or_else(
                || {
                    vec![error(
                        SEQ_DEV_GET,
                        libc::EPERM,
                        NLM_F_CAPPED | NLM_F_ACK_TLVS,
                        &[(NLMSGERR_ATTR_MSG, b"denied\0")],
                    )]
                },
                |f| vec![f],
            )
        });
        let err = query_with(&mut kernel, 3).unwrap_err();
        assert!(
            matches!(&err, NetdevError::Rejected { request: "NETDEV_CMD_DEV_GET", source, message: Some(m) }
                if source.raw_os_error() == Some(libc::EPERM) && m == "denied"),
            "{err:?}"
        );
        assert!(err.to_string().ends_with("(denied)"), "{err}");
    }

    #[test]
    fn a_kernel_that_never_answers_is_an_error() {
        let mut kernel = fake(|_| Vec::new());
        assert!(matches!(
            query_with(&mut kernel, 3),
            Err(NetdevError::MalformedReply {
                request: "CTRL_CMD_GETFAMILY",
                reason: "no reply to the request"
            })
        ));
    }

    #[test]
    fn kernel_release_looks_like_a_version() {
        let release = kernel_release().unwrap();
        assert!(release.starts_with(|c: char| c.is_ascii_digit()), "{release}");
    }

    #[test]
    fn live_loopback_has_no_zero_copy() {
        // ifindex 1 is `lo` in every network namespace, and dev-get needs no privileges.
        let features = query(1).unwrap();
        assert_eq!(features.ifindex, 1);
        assert!(!features.xdp.xsk_zerocopy, "{features:?}");
        assert_eq!(features.xdp_zc_max_segs, None);
    }

    #[test]
    fn live_unknown_ifindex_is_device_unknown() {
        let err = query(999_999).unwrap_err();
        assert!(matches!(err, NetdevError::DeviceUnknown { ifindex: 999_999 }), "{err:?}");
    }
}
