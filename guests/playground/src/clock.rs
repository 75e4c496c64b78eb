//! The wall clock the guests read when the page does not pin one: the browser's
//! (`Date.now()`) on `wasm32-unknown-unknown`, where `std::time::SystemTime` has no
//! clock and panics; the system's elsewhere.

/// Seconds since the Unix epoch.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub fn unix_time() -> u64 {
    use wasm_bindgen::prelude::wasm_bindgen;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = Date, js_name = now)]
        fn date_now() -> f64;
    }

    let ms = date_now();
    if ms.is_finite() && ms > 0.0 {
        (ms / 1000.0) as u64
    } else {
        0
    }
}

/// Seconds since the Unix epoch.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
