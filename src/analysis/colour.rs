//! Colour for attention maps, shared by the page, the widgets and their tests: the ramp and
//! the scales (linear, √, log) that place a probability on it.

/// Colour ramp (dark blue → teal → yellow), perceptually ordered; `t` in [0, 1].
pub fn ramp(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [[247.0, 251.0, 255.0], [158.0, 202.0, 225.0], [49.0, 130.0, 189.0], [8.0, 81.0, 156.0], [8.0, 29.0, 88.0]];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f) as u8;
    [c(0), c(1), c(2)]
}

/// How probabilities map onto the colour ramp. A linear scale is dominated by the sink (key 0
/// often takes most of a row); √ and log show the rest of the pattern.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColourScale {
    Linear,
    /// The default: structure shows on a typical head, the sink still stands out.
    #[default]
    Sqrt,
    /// Three decades below the map's maximum.
    Log,
}

impl ColourScale {
    pub fn parse(s: &str) -> Self {
        match s {
            "linear" => ColourScale::Linear,
            "log" => ColourScale::Log,
            _ => ColourScale::Sqrt,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ColourScale::Linear => "linear",
            ColourScale::Sqrt => "sqrt",
            ColourScale::Log => "log",
        }
    }
    /// Position on the ramp (0..=1) of `v` in a map whose largest value is `max`.
    pub fn t(self, v: f32, max: f32) -> f32 {
        let r = (v / max.max(1e-9)).clamp(0.0, 1.0);
        match self {
            ColourScale::Linear => r,
            ColourScale::Sqrt => r.sqrt(),
            ColourScale::Log => {
                if r <= 1e-3 {
                    0.0
                } else {
                    (r.log10() + 3.0) / 3.0
                }
            }
        }
    }
    /// The value at ramp position `t` (the colour bar's ticks).
    pub fn value_at(self, t: f32, max: f32) -> f32 {
        match self {
            ColourScale::Linear => t * max,
            ColourScale::Sqrt => t * t * max,
            ColourScale::Log => max * 10f32.powf(3.0 * t - 3.0),
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_darkens_monotonically() {
        let lum = |t: f32| {
            let [r, g, b] = ramp(t);
            0.2126 * r as f32 + 0.7152 * g as f32 + 0.0722 * b as f32
        };
        let mut last = f32::INFINITY;
        for i in 0..=100 {
            let l = lum(i as f32 / 100.0);
            assert!(l <= last + 1e-3, "ramp not monotone at {i}");
            last = l;
        }
        assert_eq!(ramp(-1.0), ramp(0.0));
        assert_eq!(ramp(2.0), ramp(1.0));
    }

    #[test]
    fn scales_are_monotone_and_inverted_by_their_ticks() {
        for s in [ColourScale::Linear, ColourScale::Sqrt, ColourScale::Log] {
            let mut last = -1.0;
            for i in 0..=1000 {
                let t = s.t(i as f32 / 1000.0 * 0.8, 0.8);
                assert!(t >= last && (0.0..=1.0).contains(&t), "{s:?} at {i}");
                last = t;
            }
            assert_eq!(s.t(0.8, 0.8), 1.0);
            for k in 1..=4 {
                let t = k as f32 / 4.0;
                assert!((s.t(s.value_at(t, 0.8), 0.8) - t).abs() < 1e-5, "{s:?} tick {k}");
            }
        }
        // A small value stands out more on √ and log than on linear: the sink no longer hides it.
        assert!(ColourScale::Sqrt.t(0.01, 1.0) > 5.0 * ColourScale::Linear.t(0.01, 1.0));
        assert!(ColourScale::Log.t(0.01, 1.0) > ColourScale::Sqrt.t(0.01, 1.0));
        assert_eq!(ColourScale::Log.t(1e-4, 1.0), 0.0);
        assert_eq!(ColourScale::parse("log").as_str(), "log");
        assert_eq!(ColourScale::parse("bogus"), ColourScale::Sqrt);
    }
}
