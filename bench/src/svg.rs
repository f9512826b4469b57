//! Self-contained SVG line charts, written by hand (SVG is plain XML text): one or more panels
//! stacked in one image, each with axes, ticks, labels, a legend and a title. The x axis is either
//! log2 (partition counts) or categories (latency percentiles); the y axis linear or log10.

use std::fmt::Write;

const PANEL_WIDTH_PX: f64 = 900.0;
const PANEL_HEIGHT_PX: f64 = 440.0;
const MARGIN_LEFT_PX: f64 = 80.0;
/// Room for the legend on the right.
const MARGIN_RIGHT_PX: f64 = 230.0;
const MARGIN_TOP_PX: f64 = 40.0;
const MARGIN_BOTTOM_PX: f64 = 60.0;
const LEGEND_ROW_PX: f64 = 18.0;
const MARKER_RADIUS_PX: f64 = 3.0;
/// Linear axes get about this many ticks.
const LINEAR_TICKS_TARGET: f64 = 5.0;
/// Colour-blind-safe palette (Okabe–Ito), cycled when there are more series.
const DASHES: [&str; 4] = ["none", "8 4", "2 3", "8 3 2 3"];
const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// How x values are placed.
#[derive(Clone, Debug, PartialEq)]
pub enum XScale {
    /// Numeric x on a log2 axis, ticked at every x that occurs in the data.
    Log2,
    /// Point i of a series has x = i (as f64) and is labelled `names[i]`.
    Categories(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// Line pattern: 0 solid, then dashed, dotted, dash-dotted (cycled), so that series of the
    /// same colour family or lying on top of each other stay distinguishable.
    pub dash: usize,
    /// (x, y); drawn in order of x whatever order they come in.
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: XScale,
    pub y_log: bool,
    pub series: Vec<Series>,
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A number as a short label: integers without decimals, small values with 3 significant digits.
pub fn format_number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let a = v.abs();
    let s = if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        let decimals = (-a.log10().floor()) as usize + 2;
        format!("{v:.decimals$}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A "nice" step (1, 2 or 5 × 10^k) near `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// The y axis: range and ticks.
struct YAxis {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl YAxis {
    fn new(ys: &[f64], log: bool) -> YAxis {
        let max = ys.iter().cloned().fold(f64::MIN, f64::max);
        if log {
            let min = ys.iter().cloned().fold(f64::MAX, f64::min);
            let lo_exp = min.log10().floor() as i32;
            let mut hi_exp = max.log10().ceil() as i32;
            if hi_exp <= lo_exp {
                hi_exp = lo_exp + 1;
            }
            let mut ticks = Vec::new();
            // Few decades: 1-2-5 ticks, else decades only.
            let mantissas: &[f64] = if hi_exp - lo_exp <= 2 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            for e in lo_exp..=hi_exp {
                for m in mantissas {
                    let t = m * 10f64.powi(e);
                    if t <= 10f64.powi(hi_exp) * 1.0001 {
                        ticks.push(t);
                    }
                }
            }
            YAxis {
                log: true,
                lo: 10f64.powi(lo_exp),
                hi: 10f64.powi(hi_exp),
                ticks,
            }
        } else {
            let max = if max > 0.0 { max } else { 1.0 };
            let step = nice_step(max / LINEAR_TICKS_TARGET);
            let hi = (max / step).ceil() * step;
            let n = (hi / step).round() as usize;
            YAxis {
                log: false,
                lo: 0.0,
                hi,
                ticks: (0..=n).map(|i| i as f64 * step).collect(),
            }
        }
    }

    /// 0 at the bottom, 1 at the top.
    fn fraction(&self, y: f64) -> f64 {
        if self.log {
            (y.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (y - self.lo) / (self.hi - self.lo)
        }
    }
}

/// The x axis: a position function and labelled ticks.
struct XAxis {
    scale: XScale,
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
}

impl XAxis {
    fn new(scale: &XScale, xs: &[f64]) -> XAxis {
        match scale {
            XScale::Log2 => {
                let mut distinct: Vec<f64> = xs.to_vec();
                distinct.sort_by(f64::total_cmp);
                distinct.dedup();
                let lo = distinct.first().map(|x| x.log2()).unwrap_or(0.0);
                let hi = distinct.last().map(|x| x.log2()).unwrap_or(1.0);
                let (lo, hi) = if hi > lo {
                    (lo, hi)
                } else {
                    (lo - 1.0, hi + 1.0)
                };
                XAxis {
                    scale: scale.clone(),
                    lo,
                    hi,
                    ticks: distinct.iter().map(|&x| (x, format_number(x))).collect(),
                }
            }
            XScale::Categories(names) => XAxis {
                scale: scale.clone(),
                lo: -0.5,
                hi: names.len().max(1) as f64 - 0.5,
                ticks: names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i as f64, n.clone()))
                    .collect(),
            },
        }
    }

    /// 0 at the left, 1 at the right.
    fn fraction(&self, x: f64) -> f64 {
        let v = match self.scale {
            XScale::Log2 => x.log2(),
            XScale::Categories(_) => x,
        };
        (v - self.lo) / (self.hi - self.lo)
    }
}

/// Points that can be drawn on these scales, in order of x.
fn plottable(points: &[(f64, f64)], x_scale: &XScale, y_log: bool) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(x, y)| {
            x.is_finite()
                && y.is_finite()
                && (!y_log || y > 0.0)
                && (!matches!(x_scale, XScale::Log2) || x > 0.0)
        })
        .collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p
}

fn render_panel(out: &mut String, chart: &Chart, top: f64) {
    let left = MARGIN_LEFT_PX;
    let plot_w = PANEL_WIDTH_PX - MARGIN_LEFT_PX - MARGIN_RIGHT_PX;
    let plot_h = PANEL_HEIGHT_PX - MARGIN_TOP_PX - MARGIN_BOTTOM_PX;
    let plot_top = top + MARGIN_TOP_PX;
    let bottom = plot_top + plot_h;
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        PANEL_WIDTH_PX / 2.0,
        top + 24.0,
        escape(&chart.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{left:.1}" y="{plot_top:.1}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#444"/>"##
    );
    let series: Vec<(&Series, Vec<(f64, f64)>)> = chart
        .series
        .iter()
        .map(|s| (s, plottable(&s.points, &chart.x_scale, chart.y_log)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if series.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="20" fill="#888">no data</text>"##,
            left + plot_w / 2.0,
            plot_top + plot_h / 2.0
        );
        return;
    }
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .collect();
    let x_axis = XAxis::new(&chart.x_scale, &xs);
    let y_axis = YAxis::new(&ys, chart.y_log);
    let px = |x: f64| left + x_axis.fraction(x) * plot_w;
    let py = |y: f64| bottom - y_axis.fraction(y) * plot_h;

    for &t in &y_axis.ticks {
        let y = py(t);
        let _ = writeln!(
            out,
            r##"<line x1="{left:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            left + plot_w
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"#,
            left - 6.0,
            y + 4.0,
            escape(&format_number(t))
        );
    }
    for (t, label) in &x_axis.ticks {
        let x = px(*t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/>"##,
            bottom + 5.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
            bottom + 18.0,
            escape(label)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
        left + plot_w / 2.0,
        bottom + 42.0,
        escape(&chart.x_label)
    );
    let (yl_x, yl_y) = (left - 58.0, plot_top + plot_h / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{yl_x:.1}" y="{yl_y:.1}" text-anchor="middle" font-size="13" transform="rotate(-90 {yl_x:.1} {yl_y:.1})">{}</text>"#,
        escape(&chart.y_label)
    );

    for (i, (s, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let dash = DASHES[s.dash % DASHES.len()];
        let coords: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"><title>{}</title></polyline>"#,
            coords.join(" "),
            escape(&s.name)
        );
        for &(x, y) in points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="{MARKER_RADIUS_PX}" fill="{colour}"><title>{}: {} at {}</title></circle>"#,
                px(x),
                py(y),
                escape(&s.name),
                escape(&format_number(y)),
                escape(&format_number(x))
            );
        }
        let ly = plot_top + 10.0 + i as f64 * LEGEND_ROW_PX;
        let lx = left + plot_w + 16.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3" stroke-dasharray="{dash}"/>"#,
            lx + 22.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            lx + 28.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
}

/// One SVG image holding the charts one below the other; no charts gives one "no data" panel.
pub fn render(charts: &[Chart]) -> String {
    let empty = [Chart {
        title: String::new(),
        x_label: String::new(),
        y_label: String::new(),
        x_scale: XScale::Log2,
        y_log: false,
        series: Vec::new(),
    }];
    let charts = if charts.is_empty() {
        &empty[..]
    } else {
        charts
    };
    let height = PANEL_HEIGHT_PX * charts.len() as f64;
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_WIDTH_PX}" height="{height}" viewBox="0 0 {PANEL_WIDTH_PX} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{PANEL_WIDTH_PX}" height="{height}" fill="white"/>"#
    );
    for (i, chart) in charts.iter().enumerate() {
        render_panel(&mut out, chart, i as f64 * PANEL_HEIGHT_PX);
    }
    out.push_str("</svg>\n");
    out
}

/// Test helpers shared with the matrix's tests.
#[cfg(test)]
pub(crate) mod testing {
    /// Checks that `text` is well-formed XML as far as these charts go: every element closed in
    /// order, attributes quoted, no raw '<' or stray '&' in text. Returns the element names in
    /// document order.
    pub fn check_xml(text: &str) -> Result<Vec<String>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut elements = Vec::new();
        let mut rest = text;
        let mut seen_root = false;
        while !rest.is_empty() {
            let Some(open) = rest.find('<') else {
                check_text(rest)?;
                break;
            };
            check_text(&rest[..open])?;
            if !rest[..open].trim().is_empty() && stack.is_empty() {
                return Err("text outside the root element".into());
            }
            rest = &rest[open..];
            if let Some(after) = rest.strip_prefix("<?") {
                let end = after.find("?>").ok_or("unterminated <?")?;
                rest = &after[end + 2..];
                continue;
            }
            if let Some(after) = rest.strip_prefix("<!--") {
                let end = after.find("-->").ok_or("unterminated comment")?;
                rest = &after[end + 3..];
                continue;
            }
            let close = tag_end(rest)?;
            let tag = &rest[1..close];
            rest = &rest[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                if top != name.trim() {
                    return Err(format!("<{top}> closed by </{name}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == ':' || c == '-')
            {
                return Err(format!("bad element name in <{tag}>"));
            }
            check_attributes(&body[name.len()..])?;
            if stack.is_empty() {
                if seen_root {
                    return Err("two root elements".into());
                }
                seen_root = true;
            }
            elements.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        if let Some(open) = stack.pop() {
            return Err(format!("<{open}> never closed"));
        }
        if !seen_root {
            return Err("no root element".into());
        }
        Ok(elements)
    }

    /// The index of the '>' that ends the tag at the start of `s`, skipping quoted values.
    fn tag_end(s: &str) -> Result<usize, String> {
        let mut quote = None;
        for (i, c) in s.char_indices().skip(1) {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => return Ok(i),
                (None, '<') => return Err("'<' inside a tag".into()),
                _ => {}
            }
        }
        Err("unterminated tag".into())
    }

    fn check_attributes(mut s: &str) -> Result<(), String> {
        loop {
            s = s.trim_start();
            if s.is_empty() {
                return Ok(());
            }
            let eq = s.find('=').ok_or(format!("attribute without value: {s}"))?;
            let name = s[..eq].trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("bad attribute name {name:?}"));
            }
            let value = &s[eq + 1..];
            let q = value.chars().next().ok_or("missing value")?;
            if q != '"' && q != '\'' {
                return Err(format!("unquoted attribute {name}"));
            }
            let end = value[1..].find(q).ok_or("unterminated value")? + 1;
            check_text(&value[1..end])?;
            s = &value[end + 1..];
        }
    }

    fn check_text(s: &str) -> Result<(), String> {
        if s.contains('<') {
            return Err(format!("raw '<' in text {s:?}"));
        }
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            let after = &rest[i + 1..];
            let end = after.find(';').ok_or(format!("stray '&' in {s:?}"))?;
            let entity = &after[..end];
            let known =
                matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos") || entity.starts_with('#');
            if !known {
                return Err(format!("unknown entity &{entity};"));
            }
            rest = &after[end + 1..];
        }
        Ok(())
    }

    /// The (x, y) pixel pairs of every polyline, in document order.
    pub fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split("<polyline")
            .skip(1)
            .map(|chunk| {
                let start = chunk.find("points=\"").unwrap() + "points=\"".len();
                let end = start + chunk[start..].find('"').unwrap();
                chunk[start..end]
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn throughput_chart() -> Chart {
        Chart {
            title: "produce <MiB/s> & \"acks\"".into(),
            x_label: "partitions".into(),
            y_label: "MiB/s".into(),
            x_scale: XScale::Log2,
            y_log: false,
            series: vec![
                Series {
                    name: "corelog acks=all".into(),
                    dash: 0,
                    // Out of order on purpose.
                    points: vec![(16.0, 300.0), (1.0, 100.0), (4.0, 200.0)],
                },
                Series {
                    name: "kafka acks=1 <ref>".into(),
                    dash: 1,
                    points: vec![(1.0, 80.0), (4.0, 120.0), (16.0, 90.0)],
                },
            ],
        }
    }

    #[test]
    fn a_chart_is_well_formed_with_one_polyline_per_series_in_x_order() {
        let svg = render(&[throughput_chart()]);
        let elements = check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(elements[0], "svg");
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line.len(), 3);
            assert!(line.windows(2).all(|w| w[0].0 < w[1].0), "{line:?}");
        }
        // Higher values are drawn higher (smaller pixel y): 100 < 200 < 300 for the first series.
        assert!(lines[0][0].1 > lines[0][1].1 && lines[0][1].1 > lines[0][2].1);
        // log2 x: 1, 4, 16 are equally spaced.
        let gap1 = lines[0][1].0 - lines[0][0].0;
        let gap2 = lines[0][2].0 - lines[0][1].0;
        assert!((gap1 - gap2).abs() < 0.2, "{gap1} vs {gap2}");
        // Text is escaped, the legend names every series, every partition count is a tick.
        assert!(svg.contains("produce &lt;MiB/s&gt; &amp; &quot;acks&quot;"));
        assert!(svg.contains(">kafka acks=1 &lt;ref&gt;</text>"));
        for tick in [">1</text>", ">4</text>", ">16</text>"] {
            assert!(svg.contains(tick), "{tick}");
        }
        assert!(!svg.contains("no data"));
        assert!(svg.contains(r#"stroke-dasharray="none" points"#));
        assert!(svg.contains(r#"stroke-dasharray="8 4" points"#));
    }

    #[test]
    fn log_y_categories_place_percentiles_by_magnitude() {
        let names: Vec<String> = ["p50", "p99", "max"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let chart = Chart {
            title: "latency".into(),
            x_label: "percentile".into(),
            y_label: "ms".into(),
            x_scale: XScale::Categories(names),
            y_log: true,
            series: vec![Series {
                name: "a".into(),
                dash: 2,
                // A zero cannot be drawn on a log axis: it is left out, not a panic or NaN.
                points: vec![(0.0, 1.0), (1.0, 10.0), (2.0, 100.0), (3.0, 0.0)],
            }],
        };
        let svg = render(&[chart]);
        check_xml(&svg).unwrap();
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let line = &polylines(&svg)[0];
        assert_eq!(line.len(), 3);
        // Each decade takes the same height.
        let d1 = line[0].1 - line[1].1;
        let d2 = line[1].1 - line[2].1;
        assert!(d1 > 0.0 && (d1 - d2).abs() < 0.2, "{d1} vs {d2}");
        assert!(svg.contains(">p99</text>") && svg.contains(">max</text>"));
    }

    #[test]
    fn empty_input_says_no_data() {
        for charts in [
            Vec::new(),
            vec![Chart {
                series: Vec::new(),
                ..throughput_chart()
            }],
            vec![Chart {
                series: vec![Series {
                    name: "empty".into(),
                    dash: 0,
                    points: Vec::new(),
                }],
                ..throughput_chart()
            }],
        ] {
            let svg = render(&charts);
            check_xml(&svg).unwrap();
            assert!(svg.contains(">no data</text>"), "{svg}");
            assert!(polylines(&svg).is_empty());
        }
    }

    #[test]
    fn a_single_point_and_stacked_panels_render() {
        let single = Chart {
            series: vec![Series {
                name: "one".into(),
                dash: 5,
                points: vec![(8.0, 5.0)],
            }],
            ..throughput_chart()
        };
        let svg = render(&[single, throughput_chart()]);
        check_xml(&svg).unwrap();
        assert_eq!(polylines(&svg).len(), 3);
        assert!(svg.contains(r#"height="880""#), "two panels stacked");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn the_checker_rejects_broken_xml() {
        assert!(check_xml("<a><b></a></b>").is_err());
        assert!(check_xml("<a>x & y</a>").is_err());
        assert!(check_xml("<a x=1/>").is_err());
        assert!(check_xml("<a>").is_err());
        assert!(check_xml("<a/><b/>").is_err());
        assert_eq!(check_xml("<a><b/>t &amp; u</a>").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn numbers_and_nice_steps() {
        assert_eq!(format_number(1024.0), "1024");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(0.0125), "0.0125");
        assert_eq!(format_number(40.0), "40");
        assert_eq!(nice_step(37.0), 50.0);
        assert_eq!(nice_step(0.13), 0.2);
        let y = YAxis::new(&[3.0, 97.0], false);
        assert_eq!((y.lo, y.hi), (0.0, 100.0));
        assert_eq!(y.ticks.len(), 6);
    }
}
