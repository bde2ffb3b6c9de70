//! Raw `NETLINK_GENERIC` socket calls: open, bind, send to the kernel, receive one datagram.
//!
//! Message framing and parsing live in `crate::steer::features`; this module only moves bytes.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Opens a generic-netlink socket: `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC)`.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: `socket` takes only integer arguments and touches no memory of ours.
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_GENERIC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful `socket` call, so it is open and nothing
    // else owns it; the `OwnedFd` becomes its only owner and closes it on drop.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The kernel's netlink address (port id 0), or our own with the port left for the kernel to pick.
fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: `sockaddr_nl` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

/// Binds `fd` with port id 0, so the kernel assigns a unique port id to this socket.
pub fn bind(fd: BorrowedFd<'_>) -> io::Result<()> {
    let addr = kernel_addr();
    // SAFETY: `addr` is a valid, initialised `sockaddr_nl` that outlives the call, and the length
    // passed is exactly its size; `fd` is a borrowed, open descriptor.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets an integer `SOL_NETLINK` option (`NETLINK_EXT_ACK`, `NETLINK_CAP_ACK`, ...) to `value`.
pub fn set_netlink_option(fd: BorrowedFd<'_>, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` for the duration of the call and the length passed is its
    // size; the kernel only reads it. `fd` is a borrowed, open descriptor.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            option,
            (&raw const value).cast::<libc::c_void>(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one netlink datagram to the kernel and returns the number of bytes sent.
///
/// Retries when a signal interrupts the call.
pub fn send(fd: BorrowedFd<'_>, datagram: &[u8]) -> io::Result<usize> {
    let addr = kernel_addr();
    loop {
        // SAFETY: `datagram` is a live slice and the length passed is its length, so the kernel
        // reads only initialised memory we own; `addr` is a valid `sockaddr_nl` of the size passed.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                datagram.as_ptr().cast::<libc::c_void>(),
                datagram.len(),
                0,
                (&raw const addr).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        match usize::try_from(sent) {
            Ok(sent) => return Ok(sent),
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Receives one netlink datagram into `buf`, blocking until one arrives.
///
/// Returns the datagram's full length (`MSG_TRUNC`): a value larger than `buf.len()` means the
/// datagram did not fit and only its first `buf.len()` bytes were written.
/// Retries when a signal interrupts the call.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, exclusively borrowed slice and the length passed is its
        // length, so the kernel writes only within it. `fd` is a borrowed, open descriptor.
        let len = unsafe {
            libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast::<libc::c_void>(), buf.len(), libc::MSG_TRUNC)
        };
        match usize::try_from(len) {
            Ok(len) => return Ok(len),
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

// Netlink framing, from include/uapi/linux/netlink.h.
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLA_HDRLEN: usize = 4;
pub(crate) const NLMSG_NOOP: u16 = 0x1;
pub(crate) const NLMSG_ERROR: u16 = 0x2;
pub(crate) const NLMSG_DONE: u16 = 0x3;
pub(crate) const NLMSG_OVERRUN: u16 = 0x4;
pub(crate) const NLM_F_REQUEST: u16 = 0x01;
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;
pub(crate) const NLA_TYPE_MASK: u16 = !((1 << 15) | (1 << 14));
pub(crate) const NLMSGERR_ATTR_MSG: u16 = 1;
pub(crate) const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;

// Generic netlink, from include/uapi/linux/genetlink.h.
pub(crate) const GENL_HDRLEN: usize = 4;
pub(crate) const GENL_ID_CTRL: u16 = 0x10;
pub(crate) const CTRL_CMD_GETFAMILY: u8 = 3;
pub(crate) const CTRL_VERSION: u8 = 2;
pub(crate) const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub(crate) const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// What a reply datagram said, when it was not the answer we wanted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReplyError {
    /// `NLMSG_ERROR` with a non-zero errno, and the extended-ack text if any.
    Kernel {
        errno: i32,
        message: Option<String>,
    },
    Malformed(&'static str),
}

pub(crate) fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// One netlink message: its `nlmsghdr` fields and the payload after the header.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

/// Walks the messages of one datagram, checking every length against what is left.
pub(crate) struct Messages<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let (Some(len), Some(ty), Some(flags), Some(seq), true) = (
            read_u32(rest, 0),
            read_u16(rest, 4),
            read_u16(rest, 6),
            read_u32(rest, 8),
            rest.len() >= NLMSG_HDRLEN,
        ) else {
            return Some(Err("datagram shorter than a netlink header"));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN {
            return Some(Err("netlink message shorter than its header"));
        }
        let Some(message) = rest.get(..len) else {
            return Some(Err("netlink message runs past the end of the datagram"));
        };
        self.rest = rest.get(align4(len)..).unwrap_or_default();
        Some(Ok(Message { ty, flags, seq, payload: &message[NLMSG_HDRLEN..] }))
    }
}

/// Walks the attributes of one message, checking every length against what is left.
/// Yields `(type, payload)` with the nested and byte-order flags masked off the type.
pub(crate) struct Attrs<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let (Some(len), Some(ty)) = (read_u16(rest, 0), read_u16(rest, 2)) else {
            return Some(Err("attribute shorter than its header"));
        };
        let len = usize::from(len);
        if len < NLA_HDRLEN {
            return Some(Err("attribute shorter than its header"));
        }
        let Some(attr) = rest.get(..len) else {
            return Some(Err("attribute runs past the end of its message"));
        };
        self.rest = rest.get(align4(len)..).unwrap_or_default();
        Some(Ok((ty & NLA_TYPE_MASK, &attr[NLA_HDRLEN..])))
    }
}

/// The reply to request `seq` found in a datagram.
#[derive(Debug)]
pub(crate) struct Reply<'a> {
    pub(crate) ty: u16,
    /// The generic-netlink attributes, after the `genlmsghdr`.
    pub(crate) attrs: &'a [u8],
}

/// Finds the reply to request `seq` in one datagram: `Ok(None)` if the datagram holds none.
pub(crate) fn find_reply(datagram: &[u8], seq: u32) -> Result<Option<Reply<'_>>, ReplyError> {
    for message in (Messages { rest: datagram }) {
        let message = message.map_err(ReplyError::Malformed)?;
        if message.seq != seq || message.ty == NLMSG_NOOP {
            continue;
        }
        match message.ty {
            NLMSG_ERROR => return Err(parse_error(message)),
            NLMSG_DONE => return Err(ReplyError::Malformed("NLMSG_DONE where a reply was expected")),
            NLMSG_OVERRUN => return Err(ReplyError::Malformed("the kernel reported a netlink overrun")),
            ty => {
                let attrs = message
                    .payload
                    .get(GENL_HDRLEN..)
                    .ok_or(ReplyError::Malformed("reply shorter than a generic-netlink header"))?;
                return Ok(Some(Reply { ty, attrs }));
            }
        }
    }
    Ok(None)
}

/// Decodes an `NLMSG_ERROR` message: `struct nlmsgerr`, then the extended-ack attributes.
pub(crate) fn parse_error(message: Message<'_>) -> ReplyError {
    let Some(error) = read_u32(message.payload, 0) else {
        return ReplyError::Malformed("NLMSG_ERROR shorter than its error code");
    };
    let errno = match (error as i32).checked_neg() {
        Some(0) => return ReplyError::Malformed("acknowledgement without a reply"),
        Some(errno) if errno > 0 => errno,
        _ => return ReplyError::Malformed("NLMSG_ERROR with a positive error code"),
    };
    ReplyError::Kernel { errno, message: ext_ack_message(&message) }
}

/// The extended-ack explanation of an error, if the kernel attached one (`NETLINK_EXT_ACK`).
/// A damaged explanation is dropped: the errno alone still says what happened.
pub(crate) fn ext_ack_message(message: &Message<'_>) -> Option<String> {
    if message.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // After the errno comes our request: its header only if capped, otherwise all of it.
    let echoed = if message.flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        align4(usize::try_from(read_u32(message.payload, 4)?).ok()?)
    };
    let tlvs = message.payload.get(4usize.checked_add(echoed)?..)?;
    let mut text = None;
    let mut missing = None;
    for attr in (Attrs { rest: tlvs }) {
        match attr.ok()? {
            (NLMSGERR_ATTR_MSG, bytes) => {
                let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
                text = Some(String::from_utf8_lossy(bytes).into_owned());
            }
            (NLMSGERR_ATTR_MISS_TYPE, bytes) => missing = read_u32(bytes, 0),
            _ => {}
        }
    }
    match (text, missing) {
        (Some(text), Some(ty)) => Some(format!("{text}; missing attribute {ty}")),
        (Some(text), None) => Some(text),
        (None, Some(ty)) => Some(format!("missing attribute {ty}")),
        (None, None) => None,
    }
}

/// Parses the `CTRL_CMD_GETFAMILY` reply for request `seq` about family `name` into its id.
pub(crate) fn parse_family(datagram: &[u8], seq: u32, name: &[u8]) -> Result<Option<u16>, ReplyError> {
    let Some(reply) = find_reply(datagram, seq)? else {
        return Ok(None);
    };
    if reply.ty != GENL_ID_CTRL {
        return Err(ReplyError::Malformed("family reply not from the generic-netlink controller"));
    }
    let mut id = None;
    for attr in (Attrs { rest: reply.attrs }) {
        match attr.map_err(ReplyError::Malformed)? {
            (CTRL_ATTR_FAMILY_ID, bytes) => {
                id = Some(
                    read_u16(bytes, 0)
                        .filter(|_| bytes.len() == 2)
                        .ok_or(ReplyError::Malformed("family id is not a u16"))?,
                );
            }
            (CTRL_ATTR_FAMILY_NAME, bytes) if bytes.split(|&b| b == 0).next() != Some(name) => {
                return Err(ReplyError::Malformed("family reply names another family"));
            }
            _ => {}
        }
    }
    match id {
        Some(id) if id >= GENL_ID_CTRL => Ok(Some(id)),
        Some(_) => Err(ReplyError::Malformed("family id in the reserved range")),
        None => Err(ReplyError::Malformed("family reply without a family id")),
    }
}

pub(crate) fn attr_u32(bytes: &[u8]) -> Result<u32, ReplyError> {
    read_u32(bytes, 0)
        .filter(|_| bytes.len() == 4)
        .ok_or(ReplyError::Malformed("u32 attribute is not 4 bytes"))
}

pub(crate) fn attr_u64(bytes: &[u8]) -> Result<u64, ReplyError> {
    let bytes: [u8; 8] =
        bytes.try_into().map_err(|_| ReplyError::Malformed("u64 attribute is not 8 bytes"))?;
    Ok(u64::from_ne_bytes(bytes))
}

/// Appends one attribute, padded to 4 bytes. Only our own small constants go through here.
pub(crate) fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = (NLA_HDRLEN + payload.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

/// A generic-netlink request: `nlmsghdr`, `genlmsghdr`, then one attribute.
pub(crate) fn genl_request(ty: u16, seq: u32, cmd: u8, version: u8, attr: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set below
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills in our port
    buf.extend_from_slice(&[cmd, version, 0, 0]);
    push_attr(&mut buf, attr, payload);
    let len = (buf.len() as u32).to_ne_bytes();
    buf[..4].copy_from_slice(&len);
    buf
}

/// A `CTRL_CMD_GETFAMILY` request for the family `name` (NUL-terminated).
pub(crate) fn get_family_request(seq: u32, name: &[u8]) -> Vec<u8> {
    genl_request(GENL_ID_CTRL, seq, CTRL_CMD_GETFAMILY, CTRL_VERSION, CTRL_ATTR_FAMILY_NAME, name)
}
