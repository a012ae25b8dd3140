//! A valid component that exports a world other than Switchyard's. Tests that loading refuses
//! it with a clear message.

wit_bindgen::generate!({
    inline: "
        package test:other;
        world calculator {
            export add: func(a: u32, b: u32) -> u32;
        }
    ",
});

/// Constructed only by the export glue, which exists only when built for wasm32.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Calculator;

impl Guest for Calculator {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

#[cfg(target_arch = "wasm32")]
export!(Calculator);
