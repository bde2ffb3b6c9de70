//! What one AF_XDP socket is made of: UMEM geometry, ring sizes, bind mode and busy polling,
//! and the rules that keep the rings from starving.

use serde::Serialize;

use crate::sys;

/// The smallest frame the kernel accepts (`XDP_UMEM_MIN_CHUNK_SIZE`, net/xdp/xdp_umem.c).
pub const MIN_FRAME_SIZE: u32 = 2048;

/// Sizes and modes of one AF_XDP socket.
///
/// The UMEM holds `frame_count` frames of `frame_size` bytes. When `tx_size` is non-zero the
/// last `tx_size` frames are kept for transmitting; every other frame belongs to the receive
/// path and sits in the fill ring, the kernel, the RX ring or the caller's hands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// Bytes per frame: a power of two from [`MIN_FRAME_SIZE`] to the page size.
    pub frame_size: u32,
    /// Frames in the UMEM.
    pub frame_count: u32,
    /// RX ring entries (a power of two).
    pub rx_size: u32,
    /// Fill ring entries (a power of two, larger than the RX frames: see [`ConfigError::FillTooSmall`]).
    pub fill_size: u32,
    /// Completion ring entries (a power of two, at least `tx_size`). The kernel wants one even
    /// when nothing is sent.
    pub completion_size: u32,
    /// TX ring entries and frames kept for TX (a power of two), or 0 for no TX ring.
    pub tx_size: u32,
    /// Zero-copy or copy mode.
    pub bind: BindPreference,
    /// Busy polling instead of interrupts, if wanted.
    pub busy_poll: Option<BusyPoll>,
}

impl Default for XskConfig {
    /// 4096 frames of 2048 bytes (8 MiB), all for RX; a fill ring twice the frames in flight.
    fn default() -> Self {
        Self {
            frame_size: 2048,
            frame_count: 4096,
            rx_size: 2048,
            fill_size: 8192,
            completion_size: 2048,
            tx_size: 0,
            bind: BindPreference::default(),
            busy_poll: None,
        }
    }
}

/// Which bind mode to ask the kernel for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindPreference {
    /// Zero-copy where the driver supports it, copy mode otherwise (bind without a mode flag;
    /// the kernel falls back by itself, net/xdp/xsk_buff_pool.c `xp_assign_dev`).
    #[default]
    ZeroCopyThenCopy,
    /// Copy mode only (`XDP_COPY`). Use it with skb-mode XDP.
    Copy,
    /// Zero-copy or fail (`XDP_ZEROCOPY`).
    ZeroCopy,
}

/// Busy-poll settings (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`).
///
/// With them the application drives the device queue: every [`super::XskSocket::receive`] calls
/// `recvfrom`, which runs the driver's NAPI poll in this thread.
///
/// # Minimum kernel version
/// 5.11 (preferred busy polling, Documentation/networking/napi.rst).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    /// Packets per busy-poll round (0 means the kernel's default, 8).
    pub budget: u16,
    /// Microseconds to busy-poll in blocking calls (at most `i32::MAX`).
    pub usecs: u32,
}

/// Why an [`XskConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The frame size is not a power of two between 2048 and the page size.
    #[error(
        "frame_size {frame_size} is invalid: use a power of two from {MIN_FRAME_SIZE} to the page size \
         ({page_size})"
    )]
    FrameSize {
        /// The size given.
        frame_size: u32,
        /// This machine's page size.
        page_size: usize,
    },
    /// A ring size is not a power of two (or is zero where a ring is required).
    #[error("{ring} ring size {size} is invalid: use a power of two{}", if *.ring == "tx" { " or 0 for no TX ring" } else { "" })]
    RingSize {
        /// Which ring: "rx", "fill", "completion" or "tx".
        ring: &'static str,
        /// The size given.
        size: u32,
    },
    /// Nothing would be left for RX once the TX frames are set aside.
    #[error(
        "frame_count {frame_count} leaves no RX frames once {tx_frames} are kept for TX (tx_size): raise frame_count"
    )]
    NoRxFrames {
        /// Frames in the UMEM.
        frame_count: u32,
        /// Frames kept for TX.
        tx_frames: u32,
    },
    /// The UMEM would not fit this process's address space.
    #[error("a UMEM of {frame_count} frames of {frame_size} bytes does not fit the address space")]
    UmemTooLarge {
        /// Frames.
        frame_count: u32,
        /// Bytes per frame.
        frame_size: u32,
    },
    /// The fill ring cannot hold every RX frame with room to spare.
    ///
    /// The kernel publishes how far it has read the fill ring lazily, so a ring exactly as
    /// large as the frames in flight can look full while frames wait to go back; receiving then
    /// stalls for want of frames.
    #[error(
        "fill ring size {fill_size} must be larger than the {rx_frames} RX frames it holds (the kernel \
         publishes its read position lazily): use fill_size = {}",
        (u64::from(*.rx_frames) * 2).next_power_of_two()
    )]
    FillTooSmall {
        /// Fill ring entries.
        fill_size: u32,
        /// Frames that circulate through it.
        rx_frames: u32,
    },
    /// The completion ring cannot hold every TX frame.
    #[error("completion ring size {completion_size} must be at least tx_size ({tx_frames})")]
    CompletionTooSmall {
        /// Completion ring entries.
        completion_size: u32,
        /// Frames kept for TX.
        tx_frames: u32,
    },
    /// The busy-poll time does not fit the kernel's `int`.
    #[error("busy_poll usecs {usecs} is too large: at most {}", i32::MAX)]
    BusyPollUsecs {
        /// The value given.
        usecs: u32,
    },
}

impl XskConfig {
    /// Checks every rule; the first broken one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with_page_size(sys::xsk::page_size())
    }

    pub(crate) fn validate_with_page_size(&self, page_size: usize) -> Result<(), ConfigError> {
        let fs = self.frame_size;
        if !fs.is_power_of_two() || fs < MIN_FRAME_SIZE || fs as usize > page_size {
            return Err(ConfigError::FrameSize { frame_size: fs, page_size });
        }
        for (ring, size, optional) in [
            ("rx", self.rx_size, false),
            ("fill", self.fill_size, false),
            ("completion", self.completion_size, false),
            ("tx", self.tx_size, true),
        ] {
            if !(size.is_power_of_two() || optional && size == 0) {
                return Err(ConfigError::RingSize { ring, size });
            }
        }
        let tx_frames = self.tx_frames();
        if self.frame_count <= tx_frames {
            return Err(ConfigError::NoRxFrames { frame_count: self.frame_count, tx_frames });
        }
        let too_large = ConfigError::UmemTooLarge { frame_count: self.frame_count, frame_size: fs };
        let bytes = usize::try_from(self.umem_len()).map_err(|_| too_large.clone())?;
        if isize::try_from(bytes).is_err() {
            return Err(too_large);
        }
        let rx_frames = self.rx_frames();
        if self.fill_size <= rx_frames {
            return Err(ConfigError::FillTooSmall { fill_size: self.fill_size, rx_frames });
        }
        if self.completion_size < tx_frames {
            return Err(ConfigError::CompletionTooSmall { completion_size: self.completion_size, tx_frames });
        }
        if let Some(bp) = self.busy_poll
            && i32::try_from(bp.usecs).is_err()
        {
            return Err(ConfigError::BusyPollUsecs { usecs: bp.usecs });
        }
        Ok(())
    }

    /// Bytes of UMEM.
    pub fn umem_len(&self) -> u64 {
        u64::from(self.frame_size) * u64::from(self.frame_count)
    }

    /// Frames kept for TX (the last ones of the UMEM).
    pub fn tx_frames(&self) -> u32 {
        self.tx_size
    }

    /// Frames that circulate on the receive path (the first ones of the UMEM).
    pub fn rx_frames(&self) -> u32 {
        self.frame_count.saturating_sub(self.tx_frames())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    fn check(f: impl FnOnce(&mut XskConfig)) -> Result<(), ConfigError> {
        let mut c = XskConfig::default();
        f(&mut c);
        c.validate_with_page_size(PAGE)
    }

    #[test]
    fn default_is_valid_on_this_machine_and_on_4k_pages() {
        XskConfig::default().validate().expect("default config is valid here");
        assert_eq!(check(|_| {}), Ok(()));
        let c = XskConfig::default();
        assert_eq!((c.rx_frames(), c.tx_frames(), c.umem_len()), (4096, 0, 8 << 20));
    }

    #[test]
    fn frame_size_must_be_a_power_of_two_from_2048_to_the_page() {
        for bad in [0, 1, 1024, 2047, 3000, 6144, 8192, u32::MAX] {
            assert_eq!(
                check(|c| c.frame_size = bad),
                Err(ConfigError::FrameSize { frame_size: bad, page_size: PAGE }),
                "{bad}"
            );
        }
        assert_eq!(check(|c| c.frame_size = 4096), Ok(()));
        // 16 KiB pages (arm64) allow larger frames.
        let c = XskConfig { frame_size: 16384, ..XskConfig::default() };
        assert_eq!(c.validate_with_page_size(16384), Ok(()));
    }

    #[test]
    fn ring_sizes_must_be_powers_of_two() {
        for (ring, bad) in
            [("rx", 0), ("rx", 1000), ("fill", 0), ("fill", 12288), ("completion", 3), ("tx", 3)]
        {
            let r = check(|c| match ring {
                "rx" => c.rx_size = bad,
                "fill" => c.fill_size = bad,
                "completion" => c.completion_size = bad,
                _ => c.tx_size = bad,
            });
            assert_eq!(r, Err(ConfigError::RingSize { ring, size: bad }), "{ring} {bad}");
        }
        assert_eq!(check(|c| c.tx_size = 0), Ok(()));
        let msg = check(|c| c.tx_size = 3).unwrap_err().to_string();
        assert!(msg.contains("or 0 for no TX ring"), "{msg}");
        let msg = check(|c| c.rx_size = 3).unwrap_err().to_string();
        assert!(!msg.contains("no TX ring"), "{msg}");
    }

    #[test]
    fn fill_ring_must_exceed_the_rx_frames_in_flight() {
        // Exactly as many entries as frames: refused, with the size to use.
        let err = check(|c| c.fill_size = 4096).unwrap_err();
        assert_eq!(err, ConfigError::FillTooSmall { fill_size: 4096, rx_frames: 4096 });
        assert!(err.to_string().contains("use fill_size = 8192"), "{err}");
        assert_eq!(
            check(|c| c.fill_size = 2048),
            Err(ConfigError::FillTooSmall { fill_size: 2048, rx_frames: 4096 })
        );
        // TX frames do not circulate through the fill ring.
        assert_eq!(
            check(|c| {
                c.fill_size = 4096;
                c.tx_size = 1024;
            }),
            Ok(())
        );
        // Non-power-of-two frame counts are fine as long as the fill ring is larger.
        assert_eq!(
            check(|c| {
                c.frame_count = 3000;
                c.fill_size = 4096;
            }),
            Ok(())
        );
    }

    #[test]
    fn tx_frames_need_rx_frames_left_and_a_completion_ring() {
        assert_eq!(
            check(|c| c.tx_size = 4096),
            Err(ConfigError::NoRxFrames { frame_count: 4096, tx_frames: 4096 })
        );
        assert_eq!(
            check(|c| c.frame_count = 0),
            Err(ConfigError::NoRxFrames { frame_count: 0, tx_frames: 0 })
        );
        assert_eq!(
            check(|c| c.tx_size = 4096 * 2),
            Err(ConfigError::NoRxFrames { frame_count: 4096, tx_frames: 8192 })
        );
        assert_eq!(
            check(|c| {
                c.tx_size = 1024;
                c.completion_size = 512;
            }),
            Err(ConfigError::CompletionTooSmall { completion_size: 512, tx_frames: 1024 })
        );
        let c = XskConfig { tx_size: 1024, ..XskConfig::default() };
        assert_eq!((c.rx_frames(), c.tx_frames()), (3072, 1024));
    }

    #[test]
    fn huge_umem_and_busy_poll_limits_are_errors() {
        // u32::MAX frames of 4 KiB: 16 TiB fits a 64-bit address space; the fill ring cannot
        // exceed it (the largest u32 power of two is 2^31), so the fill rule refuses it.
        let r = check(|c| {
            c.frame_size = 4096;
            c.frame_count = u32::MAX;
        });
        assert!(
            matches!(r, Err(ConfigError::FillTooSmall { .. } | ConfigError::UmemTooLarge { .. })),
            "{r:?}"
        );
        assert_eq!(
            check(|c| c.busy_poll = Some(BusyPoll { budget: 64, usecs: u32::MAX })),
            Err(ConfigError::BusyPollUsecs { usecs: u32::MAX })
        );
        assert_eq!(check(|c| c.busy_poll = Some(BusyPoll { budget: 0, usecs: 50 })), Ok(()));
    }
}
