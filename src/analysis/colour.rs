//! Colour for attention maps, shared by the page, the widgets and their tests: the ramp and
//! the scales (linear, √, log) that place a probability on it.

/// The colours of the ramp. Both run from light (little attention) to dark (much), so "darker
/// means more" holds in every figure and caption; both are readable with any colour vision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Palette {
    /// One hue, white → navy (the default).
    #[default]
    Blues,
    /// Viridis reversed, yellow → green → purple: more hue steps for telling values apart,
    /// designed to stay ordered for colour-blind readers and in greyscale.
    Viridis,
}

impl Palette {
    pub fn parse(s: &str) -> Option<Palette> {
        match s {
            "blues" => Some(Palette::Blues),
            "viridis" => Some(Palette::Viridis),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Palette::Blues => "blues",
            Palette::Viridis => "viridis",
        }
    }
    fn stops(self) -> &'static [[f32; 3]] {
        const BLUES: [[f32; 3]; 5] = [[247.0, 251.0, 255.0], [158.0, 202.0, 225.0], [49.0, 130.0, 189.0], [8.0, 81.0, 156.0], [8.0, 29.0, 88.0]];
        // matplotlib's viridis at 1, 7/8, …, 0 (light first).
        const VIRIDIS: [[f32; 3]; 9] = [
            [253.0, 231.0, 37.0],
            [170.0, 220.0, 50.0],
            [94.0, 201.0, 98.0],
            [39.0, 173.0, 129.0],
            [33.0, 145.0, 140.0],
            [44.0, 114.0, 142.0],
            [59.0, 82.0, 139.0],
            [71.0, 45.0, 123.0],
            [68.0, 1.0, 84.0],
        ];
        match self {
            Palette::Blues => &BLUES,
            Palette::Viridis => &VIRIDIS,
        }
    }
    /// The colour at `t` in [0, 1] (clamped).
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let stops = self.stops();
        let segments = (stops.len() - 1) as f32;
        let t = t.clamp(0.0, 1.0) * segments;
        let i = (t.floor() as usize).min(stops.len() - 2);
        let f = t - i as f32;
        let c = |k: usize| (stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f) as u8;
        [c(0), c(1), c(2)]
    }
}

thread_local! {
    /// The palette figures are drawn in (the page's choice; the browser has one thread).
    static PALETTE: std::cell::Cell<Palette> = const { std::cell::Cell::new(Palette::Blues) };
}

/// Chooses the palette every later [`ramp`] uses on this thread.
pub fn set_palette(p: Palette) {
    PALETTE.with(|c| c.set(p));
}

/// The colour of `t` in [0, 1] on the current palette (light = little, dark = much).
pub fn ramp(t: f32) -> [u8; 3] {
    PALETTE.with(|c| c.get()).rgb(t)
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
    fn every_palette_darkens_monotonically() {
        for p in [Palette::Blues, Palette::Viridis] {
            let lum = |t: f32| {
                let [r, g, b] = p.rgb(t);
                0.2126 * r as f32 + 0.7152 * g as f32 + 0.0722 * b as f32
            };
            let mut last = f32::INFINITY;
            for i in 0..=100 {
                let l = lum(i as f32 / 100.0);
                assert!(l <= last + 1e-3, "{p:?} not monotone at {i}");
                last = l;
            }
            assert!(lum(0.0) > 200.0 && lum(1.0) < 60.0, "{p:?}: light to dark");
            assert_eq!(p.rgb(-1.0), p.rgb(0.0));
            assert_eq!(p.rgb(2.0), p.rgb(1.0));
            assert_eq!(Palette::parse(p.as_str()), Some(p));
        }
        // The thread's palette drives `ramp`.
        assert_eq!(ramp(0.5), Palette::Blues.rgb(0.5));
        set_palette(Palette::Viridis);
        assert_eq!(ramp(0.5), Palette::Viridis.rgb(0.5));
        set_palette(Palette::Blues);
        assert_eq!(Palette::parse("rainbow"), None);
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
