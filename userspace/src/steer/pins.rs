//! Where pins live under bpffs: what `tickgate load` leaves behind, one directory per interface.
//!
//! A pinned attachment is its bpf_link and its maps under `/sys/fs/bpf/tickgate/<ifname>/`; the
//! program stays attached while the link pin exists.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use super::{
    error::LoadError,
    object::{BPF_FS_MAGIC, BPFFS, LINK_PIN, PIN_ROOT, PINNED_MAPS},
};
use crate::sys;

/// Checks that bpffs is mounted at [`BPFFS`].
pub fn require_bpffs() -> Result<(), LoadError> {
    match sys::filesystem_magic(Path::new(BPFFS)) {
        Ok(magic) if magic == BPF_FS_MAGIC => Ok(()),
        _ => Err(LoadError::BpffsNotMounted),
    }
}

/// The pin directory of an interface.
pub fn pin_dir(ifname: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(ifname)
}

fn remove_map_pins(ifname: &str) -> Result<Vec<PathBuf>, LoadError> {
    let dir = pin_dir(ifname);
    let mut removed = Vec::new();
    for name in PINNED_MAPS {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(LoadError::Pin { path, source }),
        }
    }
    Ok(removed)
}

pub(super) fn remove_pins(ifname: &str) -> Result<Vec<PathBuf>, LoadError> {
    let dir = pin_dir(ifname);
    let mut removed = remove_map_pins(ifname)?;
    let link = dir.join(LINK_PIN);
    match fs::remove_file(&link) {
        Ok(()) => removed.push(link),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(LoadError::Pin { path: link, source }),
    }
    match fs::remove_dir(&dir) {
        Ok(()) => removed.push(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(LoadError::Pin { path: dir, source }),
    }
    Ok(removed)
}

/// Interfaces with a pin directory under [`PIN_ROOT`].
pub fn pinned_interfaces() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(PIN_ROOT)
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}
