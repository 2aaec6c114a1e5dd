//! Engagement: how long the visitor was actually there, and how far they scrolled.
//!
//! Time counts only while the page is visible and the visitor interacted recently (a
//! click, key, scroll or pointer movement within the idle window); a tab left open in the
//! background or abandoned on screen does not count. The result is reported as one event
//! each time the page is hidden or left (once when both happen), carrying the time since the
//! previous report.

/// Without input for this long, the visitor is considered gone.
pub const IDLE_MS: f64 = 30_000.0;

#[derive(Debug, Clone)]
pub struct Engagement {
    visible: bool,
    /// Time of the last input (page load counts as one).
    last_input: f64,
    /// Time up to which activity has been accounted.
    mark: f64,
    /// Active milliseconds not yet reported.
    active_ms: f64,
    /// Largest scroll depth seen on this page view, in percent.
    pub max_scroll: u32,
    reported_scroll: u32,
}

impl Engagement {
    pub fn new(now: f64, visible: bool) -> Self {
        Engagement {
            visible,
            last_input: now,
            mark: now,
            active_ms: 0.0,
            max_scroll: 0,
            reported_scroll: 0,
        }
    }

    /// Credits visible, recently-interacted time up to `now`.
    fn account(&mut self, now: f64) {
        if self.visible {
            let end = now.min(self.last_input + IDLE_MS);
            if end > self.mark {
                self.active_ms += end - self.mark;
            }
        }
        if now > self.mark {
            self.mark = now;
        }
    }

    /// The visitor did something.
    pub fn input(&mut self, now: f64) {
        self.account(now);
        self.last_input = now;
    }

    /// The page became visible or hidden. Coming back counts as input.
    pub fn visibility(&mut self, now: f64, visible: bool) {
        self.account(now);
        self.visible = visible;
        if visible {
            self.last_input = now;
        }
    }

    pub fn scroll(&mut self, depth_percent: u32) {
        self.max_scroll = self.max_scroll.max(depth_percent.min(100));
    }

    /// The unreported active time and the max scroll depth, if there is anything new to
    /// report; resets the active time.
    pub fn report(&mut self, now: f64) -> Option<(u64, u32)> {
        self.account(now);
        let ms = self.active_ms as u64;
        if ms == 0 && self.max_scroll == self.reported_scroll {
            return None;
        }
        self.active_ms = 0.0;
        self.reported_scroll = self.max_scroll;
        Some((ms, self.max_scroll))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn counts_visible_time_after_input_up_to_the_idle_window() {
        let mut e = Engagement::new(0.0, true);
        e.input(10_000.0);
        // Idle from 10s: counted until 40s, then nothing.
        assert_eq!(e.report(100_000.0), Some((40_000, 0)));
        assert_eq!(e.report(200_000.0), None);
    }

    #[test]
    fn hidden_time_does_not_count() {
        let mut e = Engagement::new(0.0, true);
        e.visibility(5_000.0, false);
        e.input(20_000.0); // e.g. a key event while hidden
        e.visibility(25_000.0, true);
        assert_eq!(e.report(27_000.0), Some((7_000, 0)));
    }

    #[test]
    fn reports_scroll_depth_once_per_change() {
        let mut e = Engagement::new(0.0, false);
        e.scroll(40);
        e.scroll(130);
        e.scroll(70);
        assert_eq!(e.report(1.0), Some((0, 100)));
        assert_eq!(e.report(2.0), None);
    }
}
