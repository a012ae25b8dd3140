//! Hostile lengths do not make the decoder allocate: measured with a counting allocator.
//!
//! The allocator tracks, per thread, the bytes currently allocated and their peak, so the
//! tests of this binary can run in parallel without seeing each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_protocol::{
    ConsumeDown, ControlDown, ControlUp, DecodeError, Delivery, FrameDecoder, PublishUp, Table,
    encode,
};

struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note_allocated(size: usize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + size;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn note_freed(size: usize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note_allocated(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note_allocated(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note_freed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            note_freed(layout.size());
            note_allocated(new_size);
        }
        new_ptr
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result and the most bytes it had allocated at once on this thread.
fn peak_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let baseline = LIVE_BYTES.get();
    PEAK_BYTES.set(baseline);
    let result = f();
    (result, PEAK_BYTES.get() - baseline)
}

/// A frame with this payload, prefix included.
fn frame_with_payload(payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(4 + payload.len());
    buf.put_u32(payload.len() as u32);
    buf.extend_from_slice(payload);
    buf
}

/// bincode's varint for a length of 2^40: tag 253, then a little-endian u64.
fn huge_length() -> Vec<u8> {
    let mut varint = vec![253];
    varint.extend_from_slice(&(1u64 << 40).to_le_bytes());
    varint
}

/// What decoding costs beyond the bookkeeping of splitting the frame off the buffer and the
/// error value's message.
const SMALL: usize = 1024;

fn decode_hostile<F: serde::de::DeserializeOwned + std::fmt::Debug>(
    payload: &[u8],
) -> (DecodeError, usize) {
    let mut buf = frame_with_payload(payload);
    let (result, peak) = peak_allocation(|| FrameDecoder::default().decode::<F>(&mut buf));
    (result.expect_err("a hostile frame must not decode"), peak)
}

#[test]
fn an_announced_length_of_u32_max_allocates_nothing() {
    let mut buf = BytesMut::new();
    buf.put_u32(u32::MAX);
    buf.extend_from_slice(b"and a little data");
    let (result, peak) = peak_allocation(|| FrameDecoder::default().decode::<PublishUp>(&mut buf));
    assert!(matches!(result, Err(DecodeError::FrameTooLarge { .. })));
    assert_eq!(peak, 0);
}

#[test]
fn a_header_list_announcing_2_pow_40_entries_allocates_nothing_for_them() {
    // Publish { seq 1, exchange "", routing_key "", mandatory false, headers: 2^40 entries… }
    let mut payload = vec![0, 1, 0, 0, 0];
    payload.extend(huge_length());
    let (error, peak) = decode_hostile::<PublishUp>(&payload);
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}");
    assert!(peak < SMALL, "allocated {peak} bytes");
}

#[test]
fn a_listing_announcing_2_pow_40_entries_reserves_at_most_a_few_kib() {
    // Reply { id 7, Ok(Exchanges(2^40 entries…)) }: no count limit applies to a listing, so
    // the decoder reserves its small preallocation, then runs out of bytes.
    let mut payload = vec![1, 7, 0, 5];
    payload.extend(huge_length());
    let (error, peak) = decode_hostile::<ControlDown>(&payload);
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}");
    assert!(peak <= 4096 + SMALL, "allocated {peak} bytes");
}

#[test]
fn a_version_list_announcing_2_pow_40_entries_reserves_at_most_a_few_kib() {
    // Hello { versions: 2^40 entries… }
    let mut payload = vec![0];
    payload.extend(huge_length());
    let (error, peak) = decode_hostile::<ControlUp>(&payload);
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}");
    assert!(peak <= 4096 + SMALL, "allocated {peak} bytes");
}

#[test]
fn a_string_announcing_2_pow_40_bytes_allocates_nothing_for_it() {
    // Hello { versions: [], client_name: 2^40 bytes… }
    let mut payload = vec![0, 0];
    payload.extend(huge_length());
    let (error, peak) = decode_hostile::<ControlUp>(&payload);
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}");
    assert!(peak < SMALL, "allocated {peak} bytes");
}

#[test]
fn a_body_announcing_2_pow_40_bytes_allocates_nothing_for_it() {
    // Publish { seq 1, "", "", false, no headers, default properties, body: 2^40 bytes… }
    let mut payload = vec![0, 1, 0, 0, 0, 0];
    payload.push(0); // default properties: one byte
    payload.extend(huge_length());
    payload.extend_from_slice(b"just a few bytes of body");
    let (error, peak) = decode_hostile::<PublishUp>(&payload);
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}");
    assert!(peak < SMALL, "allocated {peak} bytes");
}

#[test]
fn decoding_a_large_delivery_does_not_copy_its_body() {
    let body = Bytes::from(vec![0xAB; 256 * 1024]);
    let frame = ConsumeDown::Deliver(Delivery {
        delivery_tag: 1,
        exchange: "events".into(),
        routing_key: "orders".into(),
        redelivered: false,
        delivery_count: 0,
        headers: Table::new(),
        properties: Box::default(),
        body: body.clone(),
    });
    let mut buf = BytesMut::new();
    encode(&frame, &mut buf).unwrap();
    let (decoded, peak) = peak_allocation(|| FrameDecoder::default().decode(&mut buf));
    assert_eq!(decoded.unwrap(), Some(frame));
    assert!(
        peak < SMALL,
        "allocated {peak} bytes for a {} byte body",
        body.len()
    );
}
