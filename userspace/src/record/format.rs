//! The byte encoding of each record body (the format is in the module docs of [`super`]).

use crate::frame_queue::{Config, Epoch, Late, MAX_QUEUES};
use crate::input::{Clock, Input, InputKind, Payload, Timestamp};
use crate::sequencer::Item;

use super::*;

pub(super) fn encode_config(body: &mut Vec<u8>, run: &RunConfig) {
    let config = &run.config;
    body.push(KIND_CONFIG);
    body.extend_from_slice(&config.tick_hz.to_be_bytes());
    body.extend_from_slice(&config.grace_us.to_be_bytes());
    body.push(match config.late {
        Late::Drop => 0,
        Late::Next => 1,
    });
    body.push(config.time_base.code());
    let (kind, epoch) = match config.epoch {
        Epoch::FirstInput => (0, 0),
        Epoch::At(epoch) => (1, epoch),
    };
    body.push(kind);
    body.extend_from_slice(&epoch.to_be_bytes());
    body.extend_from_slice(&(run.queues.len() as u32).to_be_bytes());
    for queue in &run.queues {
        body.extend_from_slice(&queue.to_be_bytes());
    }
}

pub(super) fn encode_item(body: &mut Vec<u8>, slot: u16, item: &Item) {
    match item {
        Item::Input(input) => {
            body.push(KIND_INPUT);
            body.extend_from_slice(&slot.to_be_bytes());
            body.extend_from_slice(&input.rx.ns.to_be_bytes());
            body.push(input.rx.clock.code() | (input.kind.code() << 4));
            body.extend_from_slice(&input.queue.to_be_bytes());
            body.extend_from_slice(&input.client_id.to_be_bytes());
            body.extend_from_slice(&input.match_id.to_be_bytes());
            body.extend_from_slice(&input.seq.to_be_bytes());
            body.extend_from_slice(&input.client_frame.to_be_bytes());
            body.extend_from_slice(&input.payload);
        }
        Item::Watermark(watermark) => {
            body.push(KIND_WATERMARK);
            body.extend_from_slice(&slot.to_be_bytes());
            body.extend_from_slice(&watermark.to_be_bytes());
        }
        Item::Close => {
            body.push(KIND_CLOSE);
            body.extend_from_slice(&slot.to_be_bytes());
        }
    }
}

pub(super) fn encode_epoch(body: &mut Vec<u8>, match_id: u64, epoch_ns: u64) {
    body.push(KIND_EPOCH);
    body.extend_from_slice(&match_id.to_be_bytes());
    body.extend_from_slice(&epoch_ns.to_be_bytes());
}

pub(super) fn encode_frame_check(body: &mut Vec<u8>, match_id: u64, tick: u64, hash: &[u8; 32]) {
    body.push(KIND_FRAME);
    body.extend_from_slice(&match_id.to_be_bytes());
    body.extend_from_slice(&tick.to_be_bytes());
    body.extend_from_slice(hash);
}

/// Reads fixed-width big-endian fields off a record body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or("record body too short")?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        self.take::<1>().map(|[byte]| byte)
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        self.take().map(u64::from_be_bytes)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
    fn end(self) -> Result<(), &'static str> {
        if self.0.is_empty() { Ok(()) } else { Err("trailing bytes in record body") }
    }
}

pub(super) fn decode_config(body: &[u8]) -> Result<RunConfig, &'static str> {
    let mut f = Fields(body);
    if f.u8()? != KIND_CONFIG {
        return Err("the first record is not the configuration");
    }
    let tick_hz = f.u32()?;
    let grace_us = f.u64()?;
    let late = match f.u8()? {
        0 => Late::Drop,
        1 => Late::Next,
        _ => return Err("unknown late policy"),
    };
    let time_base = Clock::from_code(f.u8()?).ok_or("unknown time base")?;
    let (kind, epoch_ns) = (f.u8()?, f.u64()?);
    let epoch = match kind {
        0 => Epoch::FirstInput,
        1 => Epoch::At(epoch_ns),
        _ => return Err("unknown epoch kind"),
    };
    let count = f.u32()? as usize;
    if count == 0 || count > MAX_QUEUES {
        return Err("queue count out of range");
    }
    let queues = (0..count).map(|_| f.u16()).collect::<Result<Vec<_>, _>>()?;
    f.end()?;
    Ok(RunConfig { config: Config { tick_hz, grace_us, late, time_base, epoch }, queues })
}

/// Decodes one record of a log in format `version` (1 has no match ids: match 0).
pub(super) fn decode_record(body: &[u8], queues: usize, version: u16) -> Result<Record, &'static str> {
    let mut f = Fields(body);
    let matches = version >= 2;
    let match_id = |f: &mut Fields<'_>| if matches { f.u64() } else { Ok(0) };
    let kind = f.u8()?;
    let slot = |f: &mut Fields<'_>| {
        let slot = f.u16()?;
        if usize::from(slot) < queues { Ok(slot) } else { Err("hand-off slot out of range") }
    };
    let record = match kind {
        KIND_INPUT => {
            let slot = slot(&mut f)?;
            let rx_ts_ns = f.u64()?;
            let byte = f.u8()?;
            let ts_source = Clock::from_code(byte & 0x0f).ok_or("unknown timestamp source")?;
            let kind = InputKind::from_code(byte >> 4).ok_or("unknown input kind")?;
            let input = Input {
                kind,
                rx: Timestamp { ns: rx_ts_ns, clock: ts_source },
                queue: f.u16()?,
                client_id: f.u32()?,
                match_id: match_id(&mut f)?,
                seq: f.u64()?,
                client_frame: f.u32()?,
                payload: Payload::from(f.rest()),
            };
            Record::Item { slot, item: Item::Input(input) }
        }
        KIND_WATERMARK => Record::Item { slot: slot(&mut f)?, item: Item::Watermark(f.u64()?) },
        KIND_CLOSE => Record::Item { slot: slot(&mut f)?, item: Item::Close },
        KIND_EPOCH => Record::Epoch { match_id: match_id(&mut f)?, epoch_ns: f.u64()? },
        KIND_FRAME => Record::Frame { match_id: match_id(&mut f)?, tick: f.u64()?, hash: f.take()? },
        KIND_CONFIG => return Err("a second configuration record"),
        _ => return Err("unknown record kind"),
    };
    f.end()?;
    Ok(record)
}
