//! Resolving and patching the RX-timestamp kfunc call in the `hw` program.
//!
//! The eBPF code emits the kfunc call with a placeholder BTF id
//! ([`tickgate_common::kfunc::PLACEHOLDER_INSN`]); before loading, the placeholder is replaced in
//! the ELF bytes with the id of `bpf_xdp_metadata_rx_timestamp` in `/sys/kernel/btf/vmlinux`.

use tickgate_common::kfunc::{PLACEHOLDER_INSN, RX_TIMESTAMP_KFUNC};

/// Why the kfunc cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KfuncError {
    /// The kernel exposes no BTF (CONFIG_DEBUG_INFO_BTF is off).
    #[error("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): {0}")]
    NoKernelBtf(String),
    /// The kernel has BTF but not this kfunc: older than 6.3.
    #[error("the kernel has no {RX_TIMESTAMP_KFUNC} (XDP RX metadata needs Linux 6.3 or later)")]
    Missing,
    /// The embedded object is not the ELF this build expects.
    #[error("the embedded XDP object is not a little-endian ELF64 file")]
    BadObject,
    /// The `hw` program contains no placeholder call to patch.
    #[error("no placeholder kfunc call found in the XDP object")]
    NoPlaceholder,
}

/// The BTF type id of `bpf_xdp_metadata_rx_timestamp` in the running kernel.
pub fn rx_timestamp_btf_id() -> Result<u32, KfuncError> {
    use libbpf_rs::btf::{Btf, types::Func};
    let btf = Btf::from_vmlinux().map_err(|e| KfuncError::NoKernelBtf(e.to_string()))?;
    let func: Func<'_> = btf.type_by_name(RX_TIMESTAMP_KFUNC).ok_or(KfuncError::Missing)?;
    Ok(func.type_id().into())
}

/// Replaces `imm` of every placeholder kfunc call in the executable sections of `elf` with
/// `btf_id`; returns how many calls were patched.
pub fn patch_placeholder_calls(elf: &mut [u8], btf_id: u32) -> Result<usize, KfuncError> {
    const SHF_EXECINSTR: u64 = 0x4;
    let u16_at = |b: &[u8], o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let u64_at = |b: &[u8], o: usize| b.get(o..o + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(KfuncError::BadObject);
    }
    let shoff = u64_at(elf, 0x28).ok_or(KfuncError::BadObject)? as usize;
    let shentsize = u16_at(elf, 0x3a).ok_or(KfuncError::BadObject)?;
    let shnum = u16_at(elf, 0x3c).ok_or(KfuncError::BadObject)?;
    let mut patched = 0;
    for i in 0..shnum {
        let sh = i.checked_mul(shentsize).and_then(|o| o.checked_add(shoff)).ok_or(KfuncError::BadObject)?;
        let field = |o: usize| sh.checked_add(o).and_then(|at| u64_at(elf, at));
        let (Some(flags), Some(offset), Some(size)) = (field(8), field(24), field(32)) else {
            return Err(KfuncError::BadObject);
        };
        if flags & SHF_EXECINSTR == 0 {
            continue;
        }
        let end = offset.checked_add(size).ok_or(KfuncError::BadObject)?;
        let section = elf.get_mut(offset as usize..end as usize).ok_or(KfuncError::BadObject)?;
        for insn in section.chunks_exact_mut(8) {
            if insn == PLACEHOLDER_INSN.to_le_bytes() {
                insn[4..8].copy_from_slice(&btf_id.to_le_bytes());
                patched += 1;
            }
        }
    }
    if patched == 0 {
        return Err(KfuncError::NoPlaceholder);
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_object_has_placeholders_and_all_get_patched() {
        let mut elf = crate::steer::object::elf().to_vec();
        let before = elf.clone();
        let n = patch_placeholder_calls(&mut elf, 0x1234).unwrap();
        assert!(n >= 1, "expected at least one kfunc call site");
        assert_ne!(elf, before);
        // Nothing is left to patch, and only the imm bytes changed.
        assert!(matches!(patch_placeholder_calls(&mut elf, 0x1234), Err(KfuncError::NoPlaceholder)));
        let changed = elf.iter().zip(&before).filter(|(a, b)| a != b).count();
        assert!(changed <= n * 4);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(matches!(patch_placeholder_calls(&mut [0u8; 10], 1), Err(KfuncError::BadObject)));
        let mut header = b"\x7fELF\x02\x01".to_vec();
        header.resize(64, 0xff);
        assert!(matches!(patch_placeholder_calls(&mut header, 1), Err(KfuncError::BadObject)));
    }
}
