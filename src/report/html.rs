//! The report as one self-contained HTML file, in Chinese: the funnel and
//! the breakdowns drawn as inline SVG bars, no script, no network.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Funnel, Report};

/// Rows shown per breakdown (the largest by messages sent).
const TOP: usize = 20;

const LABELS: [(&str, &str); 6] = [
    ("delivered", "送达"),
    ("bounced", "退回"),
    ("opened", "打开"),
    ("clicked", "点击"),
    ("replied", "回复"),
    ("unsubscribed", "退订"),
];

/// The start of a report page, up to its heading; `title` is HTML.
pub fn head(title: &str) -> String {
    format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>
body {{ font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
.cards {{ display: flex; flex-wrap: wrap; gap: .8em; }}
.card {{ background: #f4f6fa; border-radius: 8px; padding: .8em 1.2em; min-width: 7em; }}
.card b {{ display: block; font-size: 1.5em; color: #1f3a68; }}
table {{ border-collapse: collapse; width: 100%; font-size: .92em; }}
td, th {{ padding: .35em .5em; border-bottom: 1px solid #eee; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.note {{ color: #666; font-size: .9em; }}
</style></head><body><h1>{title}</h1>
"#
    )
}

pub fn render(r: &Report) -> String {
    let title = format!("{} 活动效果报告", handlebars::html_escape(&r.campaign));
    let mut out = head(&title);
    let _ = write!(
        out,
        r#"<p class="note">运行：{runs}</p>"#,
        runs = r
            .runs
            .iter()
            .map(|l| format!(
                "#{} {}（{}）",
                l.id,
                handlebars::html_escape(&l.key),
                l.state
            ))
            .collect::<Vec<_>>()
            .join("、")
    );
    let f = &r.funnel;
    out.push_str(r#"<div class="cards">"#);
    card(&mut out, "目标客户", r.audience as u64, None);
    card(&mut out, "已发送", f.sent, None);
    for (kind, label) in LABELS {
        card(
            &mut out,
            label,
            f.response(kind),
            f.rates.get(kind).copied(),
        );
    }
    out.push_str("</div>");

    out.push_str("<h2>转化漏斗</h2>");
    let mut steps = vec![
        ("目标客户", r.audience as u64),
        ("已规划", f.planned),
        ("已发送", f.sent),
    ];
    steps.extend(LABELS.iter().map(|(k, l)| (*l, f.response(k))));
    bars(&mut out, &steps, "#1f3a68");

    out.push_str("<h2>未发送原因（合规与规则拦截）</h2>");
    let suppressed: Vec<(&str, u64)> = r
        .suppressed
        .iter()
        .map(|(gate, n)| (gate_label(gate), *n as u64))
        .collect();
    if suppressed.is_empty() {
        out.push_str(r#"<p class="note">无</p>"#);
    } else {
        bars(&mut out, &suppressed, "#b5651d");
    }

    breakdown(&mut out, "按渠道", &r.by_channel);
    breakdown(&mut out, "按营业部", &r.by_branch);
    breakdown(&mut out, "按投资顾问", &r.by_advisor);

    let flagged: u64 = r.flagged.values().sum();
    let _ = write!(
        out,
        r#"<p class="note">另有 {flagged} 次打开或点击来自邮件安全网关等自动扫描（已单独标记，未计入上面的打开与点击）。比率均以已发送条数为分母。</p></body></html>"#
    );
    out
}

fn card(out: &mut String, label: &str, n: u64, rate: Option<f64>) {
    let rate = rate.map_or(String::new(), |r| {
        format!("<small>{:.1}%</small>", r * 100.0)
    });
    let _ = write!(out, r#"<div class="card">{label}<b>{n}</b>{rate}</div>"#);
}

/// Horizontal bars, each as long as its share of the largest.
fn bars(out: &mut String, rows: &[(&str, u64)], color: &str) {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let height = rows.len() * 28 + 4;
    let _ = write!(
        out,
        r#"<svg width="100%" height="{height}" viewBox="0 0 600 {height}" role="img" xmlns="http://www.w3.org/2000/svg" font-size="13">"#
    );
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = i * 28 + 4;
        let w = (*n as f64 / max * 400.0).max(if *n > 0 { 1.0 } else { 0.0 });
        let _ = write!(
            out,
            r#"<text x="0" y="{ty}">{label}</text><rect x="120" y="{y}" width="{w:.1}" height="20" rx="3" fill="{color}"/><text x="{tx:.1}" y="{ty}">{n}</text>"#,
            ty = y + 15,
            label = handlebars::html_escape(label),
            tx = 126.0 + w,
        );
    }
    out.push_str("</svg>");
}

fn breakdown(out: &mut String, title: &str, rows: &BTreeMap<String, Funnel>) {
    let _ = write!(out, "<h2>{title}</h2>");
    let mut rows: Vec<(&String, &Funnel)> = rows.iter().collect();
    rows.sort_by(|a, b| b.1.sent.cmp(&a.1.sent).then(a.0.cmp(b.0)));
    let more = rows.len().saturating_sub(TOP);
    out.push_str("<table><tr><th></th><th>已发送</th>");
    for (_, label) in LABELS {
        let _ = write!(out, "<th>{label}</th>");
    }
    out.push_str("<th>打开率</th></tr>");
    for (name, f) in rows.into_iter().take(TOP) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>",
            handlebars::html_escape(name),
            f.sent
        );
        for (kind, _) in LABELS {
            let _ = write!(out, "<td>{}</td>", f.response(kind));
        }
        let rate = f.rates.get("opened").copied().unwrap_or(0.0);
        let _ = write!(
            out,
            r##"<td><svg width="90" height="12"><rect width="{w:.1}" height="12" fill="#1f3a68"/></svg> {pct:.1}%</td></tr>"##,
            w = rate * 60.0,
            pct = rate * 100.0
        );
    }
    out.push_str("</table>");
    if more > 0 {
        let _ = write!(
            out,
            r#"<p class="note">另有 {more} 项未列出（见 --json）。</p>"#
        );
    }
}

/// The Chinese name of a gate, as compliance staff say it.
fn gate_label(gate: &str) -> &str {
    match gate {
        "already_sent" => "已发送过（每客户一次）",
        "refused_personalisation" => "拒绝个性化营销",
        "do_not_contact" => "禁止联系名单",
        "assessment_missing" => "未做风险测评",
        "assessment_expired" => "风险测评过期",
        "lowest_category" => "最低风险承受能力类别",
        "risk_level" => "风险等级不匹配",
        "below_min_assets" => "资产未达门槛",
        "not_professional" => "非专业投资者",
        "shared_contact_unsuitable" => "共用联系方式的账户不适当",
        "frequency_cap" => "超过发送频率上限",
        "no_consent" => "未同意接收",
        "unsubscribed" => "已退订",
        "no_address" => "无联系方式",
        "bad_address" => "联系方式无效",
        "duplicate_contact" => "联系方式重复",
        other => other,
    }
}
