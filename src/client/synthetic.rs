//! Synthetic clients and engagement history for demos, load tests and
//! development: realistic enough to exercise import, segmentation and
//! reporting, and deterministic, so that a seed reproduces a data set exactly.
//!
//! Every client comes from its own RNG stream keyed by (seed, index), so the
//! history generator re-derives a client's consents and holdings instead of
//! keeping the client list in memory.

use std::io::{self, BufWriter, Write};

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use rand::distributions::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, LogNormal, Zipf};
use serde_json::Value;

use super::row::{Column, RowBuilder};
use super::Client;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    /// How many clients; ids run from 1 to this.
    pub clients: u64,
    /// The same seed gives the same bytes.
    pub seed: u64,
    /// Days of event history to generate, ending the day before `today`.
    pub history_days: u32,
    /// The firm's local date the data is generated for.
    pub today: NaiveDate,
}

/// Real A-shares (code, name), most popular first.
#[rustfmt::skip]
pub const STOCKS: &[(&str, &str)] = &[
    ("600519", "贵州茅台"), ("000001", "平安银行"), ("300750", "宁德时代"), ("601318", "中国平安"),
    ("600036", "招商银行"), ("000858", "五粮液"), ("002594", "比亚迪"), ("601012", "隆基绿能"),
    ("600900", "长江电力"), ("000333", "美的集团"), ("601166", "兴业银行"), ("600276", "恒瑞医药"),
    ("002415", "海康威视"), ("300059", "东方财富"), ("688981", "中芯国际"), ("601888", "中国中免"),
    ("600030", "中信证券"), ("000568", "泸州老窖"), ("002475", "立讯精密"), ("603259", "药明康德"),
    ("600887", "伊利股份"), ("601899", "紫金矿业"), ("000725", "京东方A"), ("300015", "爱尔眼科"),
    ("688111", "金山办公"), ("600309", "万华化学"), ("002714", "牧原股份"), ("601398", "工商银行"),
    ("601288", "农业银行"), ("601988", "中国银行"), ("600028", "中国石化"), ("601857", "中国石油"),
    ("000651", "格力电器"), ("002352", "顺丰控股"), ("300124", "汇川技术"), ("600585", "海螺水泥"),
    ("601668", "中国建筑"), ("600050", "中国联通"), ("000063", "中兴通讯"), ("002230", "科大讯飞"),
    ("688012", "中微公司"), ("300760", "迈瑞医疗"), ("600690", "海尔智家"), ("601628", "中国人寿"),
    ("000002", "万科A"), ("600048", "保利发展"), ("601633", "长城汽车"), ("002304", "洋河股份"),
    ("600809", "山西汾酒"), ("000538", "云南白药"), ("601088", "中国神华"), ("600104", "上汽集团"),
    ("601328", "交通银行"), ("600000", "浦发银行"), ("000776", "广发证券"), ("600438", "通威股份"),
    ("300274", "阳光电源"), ("002460", "赣锋锂业"), ("603288", "海天味业"), ("601919", "中远海控"),
];

/// (surname, pinyin) weighted roughly by national frequency.
#[rustfmt::skip]
const SURNAMES: &[((&str, &str), u32)] = &[
    (("王", "wang"), 72), (("李", "li"), 72), (("张", "zhang"), 68), (("刘", "liu"), 54),
    (("陈", "chen"), 46), (("杨", "yang"), 33), (("黄", "huang"), 23), (("赵", "zhao"), 20),
    (("周", "zhou"), 19), (("吴", "wu"), 19), (("徐", "xu"), 14), (("孙", "sun"), 14),
    (("胡", "hu"), 13), (("朱", "zhu"), 13), (("高", "gao"), 12), (("林", "lin"), 12),
    (("何", "he"), 12), (("郭", "guo"), 11), (("马", "ma"), 11), (("罗", "luo"), 9),
    (("梁", "liang"), 9), (("宋", "song"), 8), (("郑", "zheng"), 8), (("谢", "xie"), 7),
    (("韩", "han"), 7), (("唐", "tang"), 7), (("冯", "feng"), 7), (("于", "yu"), 6),
    (("董", "dong"), 6), (("肖", "xiao"), 6), (("程", "cheng"), 5), (("曹", "cao"), 5),
    (("袁", "yuan"), 5), (("邓", "deng"), 5), (("许", "xu"), 5), (("沈", "shen"), 4),
    (("曾", "zeng"), 4), (("彭", "peng"), 4), (("吕", "lv"), 4), (("苏", "su"), 4),
    (("蒋", "jiang"), 4), (("蔡", "cai"), 4), (("叶", "ye"), 3), (("魏", "wei"), 3),
    (("潘", "pan"), 3), (("杜", "du"), 3), (("夏", "xia"), 3), (("钟", "zhong"), 3),
    (("田", "tian"), 3), (("姜", "jiang"), 3), (("范", "fan"), 3), (("方", "fang"), 3),
    (("欧阳", "ouyang"), 1), (("司马", "sima"), 1), (("诸葛", "zhuge"), 1), (("上官", "shangguan"), 1),
];

/// Common given-name characters and their pinyin.
#[rustfmt::skip]
const GIVEN_NAMES: &[(&str, &str)] = &[
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂", "gui"), ("英", "ying"), ("华", "hua"),
    ("玉", "yu"), ("建", "jian"), ("文", "wen"), ("辉", "hui"), ("力", "li"), ("斌", "bin"),
    ("鹏", "peng"), ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"),
    ("帆", "fan"), ("旭", "xu"), ("宁", "ning"), ("龙", "long"), ("欣", "xin"), ("佳", "jia"),
    ("婷", "ting"), ("雪", "xue"), ("慧", "hui"), ("琳", "lin"), ("晶", "jing"), ("颖", "ying"),
    ("倩", "qian"), ("梅", "mei"), ("兰", "lan"), ("红", "hong"), ("燕", "yan"), ("萍", "ping"),
    ("玲", "ling"), ("春", "chun"), ("海", "hai"), ("峰", "feng"), ("波", "bo"), ("东", "dong"),
    ("志", "zhi"), ("国", "guo"), ("成", "cheng"), ("新", "xin"), ("晨", "chen"), ("子", "zi"),
    ("轩", "xuan"), ("博", "bo"), ("思", "si"), ("雨", "yu"), ("梓", "zi"), ("涵", "han"),
    ("嘉", "jia"), ("睿", "rui"), ("悦", "yue"), ("琪", "qi"), ("瑞", "rui"), ("诗", "shi"),
    ("晓", "xiao"), ("立", "li"), ("永", "yong"), ("德", "de"),
];

/// (营业部, city, slug for campaign names).
#[rustfmt::skip]
const BRANCHES: &[(&str, &str, &str)] = &[
    ("北京金融大街证券营业部", "北京", "beijing-jinrongdajie"),
    ("北京中关村大街证券营业部", "北京", "beijing-zhongguancun"),
    ("上海浦东新区世纪大道证券营业部", "上海", "shanghai-shijidadao"),
    ("上海淮海中路证券营业部", "上海", "shanghai-huaihaizhonglu"),
    ("深圳福田区益田路证券营业部", "深圳", "shenzhen-yitianlu"),
    ("深圳南山区科技园证券营业部", "深圳", "shenzhen-kejiyuan"),
    ("广州天河路证券营业部", "广州", "guangzhou-tianhelu"),
    ("杭州庆春路证券营业部", "杭州", "hangzhou-qingchunlu"),
    ("南京中山路证券营业部", "南京", "nanjing-zhongshanlu"),
    ("成都人民南路证券营业部", "成都", "chengdu-renminnanlu"),
    ("武汉中北路证券营业部", "武汉", "wuhan-zhongbeilu"),
    ("西安高新路证券营业部", "西安", "xian-gaoxinlu"),
];

#[rustfmt::skip]
const EMAIL_DOMAINS: &[(&str, u32)] = &[("qq.com", 35), ("163.com", 20), ("126.com", 10),
    ("sina.com", 5), ("gmail.com", 8), ("outlook.com", 7), ("foxmail.com", 5)];
const MOBILE_PREFIXES: &[u32] = &[
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    166, 170, 171, 172, 173, 174, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188,
    189, 198, 199,
];
/// Per mille: 2% never assessed, the rest C1 10%, C2 25%, C3 35%, C4 20%, C5 10%.
#[rustfmt::skip]
const RISK_LEVELS: &[(Option<u8>, u32)] =
    &[(None, 20), (Some(1), 98), (Some(2), 245), (Some(3), 343), (Some(4), 196), (Some(5), 98)];
#[rustfmt::skip]
const INVESTOR_TYPES: &[(&str, u32)] = &[("ordinary", 940), ("professional_a", 15),
    ("professional_b", 30), ("professional_c", 15)];
#[rustfmt::skip]
const HOLDING_COUNTS: &[(usize, u32)] =
    &[(0, 15), (1, 20), (2, 20), (3, 15), (4, 10), (5, 8), (6, 6), (7, 4), (8, 2)];
const REPLIES: &[&str] = &["收到", "谢谢", "好的", "谢谢提醒", "已阅", "TD", "退订"];
const HEADER: &str = "id,name,email,phone,branch,advisor,risk_level,assets,tags,holdings,\
watchlist,birthday,opened_on,last_trade_on,consent_email,consent_sms,investor_type,\
lowest_risk_category,risk_assessed_on,personalised_marketing,city";

// Salts keep the client, history and schedule streams of one seed apart.
const CLIENT_SALT: u64 = 0x636c_6965_6e74_7321;
const HISTORY_SALT: u64 = 0x6869_7374_6f72_7921;
const SCHEDULE_SALT: u64 = 0x7363_6865_6475_6c65;
/// Advisors are the firm's staff: the same whatever the seed.
const ADVISOR_SEED: u64 = 0x6164_7669_736f_7273;
const ADVISORS_PER_BRANCH: usize = 5;
const DAY: u64 = 86_400;
const RESEARCH_SITE: &str = "https://research.example.com";

/// Writes `opts.clients` clients as CSV (header included) to `out`, streaming:
/// memory use does not grow with the number of clients.
pub fn write_clients_csv<W: Write>(opts: &SyntheticOptions, out: W) -> io::Result<()> {
    let synth = Gen::new(opts);
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(HEADER.split(','))?;
    for index in 1..=opts.clients {
        csv.write_record(&synth.client(index).row)?;
    }
    csv.flush()
}

/// Writes a JSONL event history for the same clients (same seed => same
/// client ids), one JSON object per line, and returns the number of events
/// written. Streaming as well.
pub fn write_history_jsonl<W: Write>(opts: &SyntheticOptions, out: W) -> io::Result<u64> {
    let synth = Gen::new(opts);
    let history = History::new(&synth, opts.history_days);
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut events = Vec::new();
    let mut written = 0;
    for index in 1..=opts.clients {
        events.clear();
        history.client_events(index, &synth.client(index), &mut events);
        // Stable: events pushed in causal order keep it when times tie.
        events.sort_by_key(|e| e.at);
        let id = client_id(index);
        for event in &events {
            history.write_event(&mut out, &id, event)?;
        }
        written += events.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

/// Generated clients as herald reads them after an import, without a
/// database: for template checks and benchmarks.
pub fn clients(opts: &SyntheticOptions) -> Vec<Client> {
    let synth = Gen::new(opts);
    let columns: Vec<Column> = HEADER.split(',').map(Column::from_header).collect();
    (1..=opts.clients)
        .filter_map(|index| {
            let mut row = RowBuilder::new();
            for (column, value) in columns.iter().zip(synth.client(index).row) {
                match column {
                    Column::Known(field) => row.set(*field, &value),
                    Column::Attribute(name) => row.set_attribute(name, Value::String(value)),
                }
            }
            row.finish().ok().map(|r| r.client)
        })
        .collect()
}

fn client_id(index: u64) -> String {
    format!("{index:010}")
}

fn stream(seed: u64, salt: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt);
    rng.set_stream(index);
    rng
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let mut r = rng.gen_range(0..table.iter().map(|e| e.1).sum::<u32>());
    for &(value, weight) in table {
        if r < weight {
            return value;
        }
        r -= weight;
    }
    table[table.len() - 1].0
}

/// An exponentially distributed draw.
fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -(1.0 - rng.gen::<f64>()).ln() * mean
}

/// A Chinese name and its pinyin.
fn chinese_name(rng: &mut ChaCha8Rng) -> (String, String) {
    let (surname, pinyin) = weighted(rng, SURNAMES);
    let (mut name, mut pinyin) = (surname.to_owned(), pinyin.to_owned());
    for _ in 0..1 + usize::from(rng.gen_bool(0.75)) {
        let (c, p) = GIVEN_NAMES[rng.gen_range(0..GIVEN_NAMES.len())];
        name.push_str(c);
        pinyin.push_str(p);
    }
    (name, pinyin)
}

/// An address unique to the client: the index is always part of it.
fn email(rng: &mut ChaCha8Rng, pinyin: &str, index: u64) -> String {
    let domain = weighted(rng, EMAIL_DOMAINS);
    match rng.gen_range(0..4) {
        // QQ mailboxes are usually the QQ number.
        0 if domain == "qq.com" => format!("{}@{domain}", 100_000 + index),
        0 | 1 => format!("{pinyin}{index}@{domain}"),
        2 => format!("{pinyin}.{index}@{domain}"),
        _ => format!("{pinyin}_{index}@{domain}"),
    }
}

fn mobile(rng: &mut ChaCha8Rng) -> String {
    let prefix = MOBILE_PREFIXES[rng.gen_range(0..MOBILE_PREFIXES.len())];
    let number = format!("{prefix}{:08}", rng.gen_range(0..100_000_000));
    // Some CRMs export the country code: exercises normalisation.
    match rng.gen_bool(0.05) {
        true => format!("+86 {number}"),
        false => number,
    }
}

/// Up to three tags, in order of importance.
fn tags(rng: &mut ChaCha8Rng, assets: f64, new: bool, dormant: bool) -> Vec<&'static str> {
    // Margin trading and the STAR market both require 500,000 CNY in assets.
    let qualified = assets >= 500_000.0;
    let vip = (assets >= 1_000_000.0 && rng.gen_bool(0.6)) || rng.gen_bool(0.01);
    let tags = [
        ("high_net_worth", assets >= 5_000_000.0),
        ("vip", vip),
        ("margin", qualified && rng.gen_bool(0.35)),
        ("star_market", qualified && rng.gen_bool(0.4)),
        ("new_client", new),
        ("dormant", dormant),
        ("fund_investor", rng.gen_bool(0.08)),
    ];
    tags.iter().filter(|t| t.1).map(|t| t.0).take(3).collect()
}

/// One client: the CSV row, and what the history needs to know about them.
struct Profile {
    row: Vec<String>,
    branch: usize,
    vip: bool,
    holdings: Vec<usize>,
    consent_email: bool,
    consent_sms: bool,
    personalised: bool,
}

/// Distributions and the advisor pool shared by all clients.
struct Gen {
    seed: u64,
    today: NaiveDate,
    advisors: Vec<String>,
    assets: LogNormal<f64>,
    pro_assets: LogNormal<f64>,
    popularity: Zipf<f64>,
}

impl Gen {
    fn new(opts: &SyntheticOptions) -> Self {
        let rng = &mut ChaCha8Rng::seed_from_u64(ADVISOR_SEED);
        let mut advisors = Vec::new();
        while advisors.len() < BRANCHES.len() * ADVISORS_PER_BRANCH {
            let (name, _) = chinese_name(rng);
            if !advisors.contains(&name) {
                advisors.push(name);
            }
        }
        Gen {
            seed: opts.seed,
            today: opts.today,
            advisors,
            // Median 150,000 CNY with a tail to tens of millions.
            assets: LogNormal::new(150_000f64.ln(), 1.5).expect("valid sigma"),
            pro_assets: LogNormal::new(6_000_000f64.ln(), 0.8).expect("valid sigma"),
            popularity: Zipf::new(STOCKS.len() as u64, 1.0).expect("valid exponent"),
        }
    }

    fn client(&self, index: u64) -> Profile {
        let rng = &mut stream(self.seed, CLIENT_SALT, index);
        let (name, pinyin) = chinese_name(rng);
        let email = rng.gen_bool(0.8).then(|| email(rng, &pinyin, index));
        let phone = rng.gen_bool(0.95).then(|| mobile(rng));
        let branch = rng.gen_range(0..BRANCHES.len());
        let advisor = &self.advisors[branch * ADVISORS_PER_BRANCH + rng.gen_range(0..5)];
        let investor_type = weighted(rng, INVESTOR_TYPES);
        // Professional investors need millions in financial assets.
        let assets = match investor_type {
            "ordinary" => self.assets.sample(rng),
            _ => self.pro_assets.sample(rng),
        };
        let risk = weighted(rng, RISK_LEVELS);
        let lowest = risk == Some(1) && rng.gen_bool(0.1);
        let (birthday, opened) = self.birthday_and_opening(rng);
        let dormant = rng.gen_bool(0.15);
        let last_trade = self.last_trade(rng, opened, dormant);
        let assessed = risk.map(|_| self.assessed_on(rng, opened));
        let new = (self.today - opened).num_days() < 90;
        let tags = tags(rng, assets, new, dormant);
        let n = weighted(
            rng,
            if dormant {
                &[(0, 1), (1, 1)]
            } else {
                HOLDING_COUNTS
            },
        );
        let holdings = self.codes(rng, n);
        // 30% watch nothing, the rest one to ten stocks.
        let n = rng.gen_range(1..=10) * usize::from(rng.gen_bool(0.7));
        let watchlist = self.codes(rng, n);
        let consent_email = email.is_some() && rng.gen_bool(0.7);
        let consent_sms = phone.is_some() && rng.gen_bool(0.85);
        let personalised = !rng.gen_bool(0.03);
        let date = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
        let codes = |c: &[usize]| c.iter().map(|&i| STOCKS[i].0).collect::<Vec<_>>().join(";");
        let row = vec![
            client_id(index),
            name,
            email.unwrap_or_default(),
            phone.unwrap_or_default(),
            BRANCHES[branch].0.to_owned(),
            advisor.clone(),
            risk.map_or(String::new(), |r| format!("C{r}")),
            format!("{:.2}", assets.max(0.0)),
            tags.join(";"),
            codes(&holdings),
            codes(&watchlist),
            birthday.to_string(),
            opened.to_string(),
            date(last_trade),
            consent_email.to_string(),
            consent_sms.to_string(),
            investor_type.to_owned(),
            lowest.to_string(),
            date(assessed),
            personalised.to_string(),
            BRANCHES[branch].1.to_owned(),
        ];
        let vip = tags.contains(&"vip");
        Profile {
            row,
            branch,
            vip,
            holdings,
            consent_email,
            consent_sms,
            personalised,
        }
    }

    /// Age 20 to 85, clustered in the middle (the mean of two uniform draws);
    /// the account opened from 2000 or age 18, skewed to recent years.
    fn birthday_and_opening(&self, rng: &mut ChaCha8Rng) -> (NaiveDate, NaiveDate) {
        let age = (rng.gen_range(7_310..31_040) + rng.gen_range(7_310..31_040)) / 2;
        let birthday = self.today - Days::new(age);
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
        let first = (birthday + Months::new(18 * 12)).max(epoch).min(self.today);
        let span = (self.today - first).num_days() as f64;
        let opened = first + Days::new((span * rng.gen::<f64>().sqrt()) as u64);
        (birthday, opened)
    }

    /// None for 10% (never traded); recent unless dormant.
    fn last_trade(
        &self,
        rng: &mut ChaCha8Rng,
        opened: NaiveDate,
        dormant: bool,
    ) -> Option<NaiveDate> {
        let yesterday = self.today.pred_opt()?;
        if rng.gen_bool(0.1) || opened > yesterday {
            return None;
        }
        let span = (yesterday - opened).num_days() as u64;
        let ago = match dormant {
            // Dormant: no trade in the last half year, if the account is that old.
            true if span > 180 => rng.gen_range(181..=span),
            true => rng.gen_range(0..=span),
            false => (exponential(rng, 12.0) as u64).min(span),
        };
        Some(yesterday - Days::new(ago))
    }

    /// Assessments are valid for two years; about 8% have expired.
    fn assessed_on(&self, rng: &mut ChaCha8Rng, opened: NaiveDate) -> NaiveDate {
        let ago = match rng.gen_bool(0.095) {
            true => rng.gen_range(731..2_500),
            false => rng.gen_range(0..730),
        };
        (self.today - Days::new(ago)).max(opened)
    }

    /// `n` distinct stocks, popular ones more likely.
    fn codes(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
        let mut codes = Vec::with_capacity(n);
        while codes.len() < n {
            let i = self.popularity.sample(rng) as usize - 1;
            if !codes.contains(&i) {
                codes.push(i);
            }
        }
        codes
    }
}

#[derive(Clone, Copy)]
enum Campaign {
    Bulletin,
    /// A research report on `STOCKS[i]`.
    Report(usize),
    /// The seminar of `BRANCHES[i]`, and when it starts.
    Seminar(usize, u64),
}

#[derive(Clone, Copy)]
enum Detail {
    Empty,
    Click,
    Reply(&'static str),
}

struct Event {
    /// Seconds since the start of the window.
    at: u64,
    kind: &'static str,
    channel: &'static str,
    campaign: Campaign,
    detail: Detail,
}

/// The window's calendar: dates, report days and seminars.
struct History {
    seed: u64,
    dates: Vec<NaiveDate>,
    /// `reports[day][stock]`: a report on that stock goes out that day.
    reports: Vec<Vec<bool>>,
    report_names: Vec<String>,
    /// Per branch: (invitation day, seminar day, campaign); none if no days.
    seminars: Vec<(usize, usize, String)>,
    /// Most clients rarely open, some often; the mean is 20%.
    engagement: Beta<f64>,
}

impl History {
    fn new(synth: &Gen, days: u32) -> Self {
        let first = synth.today - Days::new(u64::from(days));
        let dates: Vec<_> = (0..days).map(|d| first + Days::new(d.into())).collect();
        let rng = &mut stream(synth.seed, SCHEDULE_SALT, 0);
        // Analysts cover each stock about twice a month, on trading days.
        let mut reports = vec![vec![false; STOCKS.len()]; dates.len()];
        for (day, date) in reports.iter_mut().zip(&dates) {
            day.fill_with(|| weekday(*date) && rng.gen_bool(0.09));
        }
        let seminars = (0..BRANCHES.len() * usize::from(!dates.is_empty()))
            .map(|b| {
                let day = rng.gen_range(0..dates.len());
                let date = dates[day].format("%Y%m%d");
                // Invitations go out a week ahead, or on the window's first day.
                (
                    day.saturating_sub(7),
                    day,
                    format!("seminar-{}-{date}", BRANCHES[b].2),
                )
            })
            .collect();
        let engagement = Beta::new(0.5, 2.0).expect("positive shapes");
        let report_names = STOCKS.iter().map(|s| format!("report-{}", s.0)).collect();
        History {
            seed: synth.seed,
            dates,
            reports,
            report_names,
            seminars,
            engagement,
        }
    }

    fn client_events(&self, index: u64, p: &Profile, events: &mut Vec<Event>) {
        let mut rng = stream(self.seed, HISTORY_SALT, index);
        let engagement = self.engagement.sample(&mut rng);
        // Only subscribers get the bulletin, on one channel: keeps volume sane.
        let bulletin = match (rng.gen_bool(0.3), p.consent_email, p.consent_sms) {
            (true, true, true) if rng.gen_bool(0.4) => Some("sms"),
            (true, true, _) => Some("email"),
            (true, false, true) => Some("sms"),
            _ => None,
        };
        // Reports and invitations prefer email: they are long and carry links.
        let direct = match (p.consent_email, p.consent_sms) {
            (true, _) => Some("email"),
            (false, true) => Some("sms"),
            (false, false) => None,
        };
        let research = direct.filter(|_| p.personalised && rng.gen_bool(0.4));
        let invited = direct.filter(|_| rng.gen_bool(if p.vip { 0.15 } else { 0.03 }));
        let (email, sms) = (p.consent_email, p.consent_sms);
        let mut sink = Sink {
            rng,
            events,
            email,
            sms,
            engagement,
        };
        for (day, &date) in self.dates.iter().enumerate() {
            let midnight = day as u64 * DAY;
            if let Some(channel) = bulletin.filter(|_| weekday(date)) {
                let at = midnight + 30_600 + sink.rng.gen_range(0..900); // about 08:30
                sink.send(Campaign::Bulletin, channel, at);
            }
            for &stock in p.holdings.iter().filter(|&&s| self.reports[day][s]) {
                if let Some(channel) = research {
                    // After the close, staggered per stock.
                    let at = midnight + 59_400 + stock as u64 * 20;
                    sink.send(Campaign::Report(stock), channel, at);
                }
            }
            let (invite_day, seminar_day, _) = self.seminars[p.branch];
            if let Some(channel) = invited.filter(|_| invite_day == day) {
                let starts = seminar_day as u64 * DAY + 50_400; // 14:00
                let at = midnight + 36_000 + sink.rng.gen_range(0..600);
                sink.send(Campaign::Seminar(p.branch, starts), channel, at);
            }
        }
    }

    fn write_event<W: Write>(&self, out: &mut W, id: &str, e: &Event) -> io::Result<()> {
        let date = self.dates[(e.at / DAY) as usize];
        let (h, m, s) = (e.at % DAY / 3_600, e.at % 3_600 / 60, e.at % 60);
        write!(
            out,
            "{{\"client\":\"{id}\",\"time\":\"{date}T{h:02}:{m:02}:{s:02}+08:00\","
        )?;
        write!(
            out,
            "\"type\":\"{}\",\"channel\":\"{}\",",
            e.kind, e.channel
        )?;
        let (kind, campaign) = match e.campaign {
            Campaign::Bulletin => ("market_bulletin", "daily-bulletin"),
            Campaign::Report(i) => ("research_report", self.report_names[i].as_str()),
            Campaign::Seminar(b, _) => ("seminar_invitation", self.seminars[b].2.as_str()),
        };
        write!(
            out,
            "\"campaign_kind\":\"{kind}\",\"campaign\":\"{campaign}\",\"details\":"
        )?;
        match e.detail {
            Detail::Empty => out.write_all(b"{}")?,
            Detail::Click => write!(out, "{{\"url\":\"{RESEARCH_SITE}/{campaign}/{date}\"}}")?,
            Detail::Reply(text) => write!(out, "{{\"text\":{}}}", serde_json::to_string(text)?)?,
        }
        out.write_all(b"}\n")
    }
}

/// One client's events as they are generated, and what still reaches them.
struct Sink<'a> {
    rng: ChaCha8Rng,
    events: &'a mut Vec<Event>,
    email: bool,
    sms: bool,
    /// Probability of opening a delivered email.
    engagement: f64,
}

impl Sink<'_> {
    /// A send and the reactions to it.
    fn send(&mut self, campaign: Campaign, channel: &'static str, at: u64) {
        if !((channel == "email" && self.email) || (channel == "sms" && self.sms)) {
            return;
        }
        // Reactions to a message come the same day: keeps them inside the window.
        let end = at / DAY * DAY + DAY - 1;
        let (rng, events) = (&mut self.rng, &mut *self.events);
        let mut push = |at: u64, kind, detail| {
            let event = Event {
                at,
                kind,
                channel,
                campaign,
                detail,
            };
            events.push(event);
        };
        push(at, "sent", Detail::Empty);
        if channel == "email" && rng.gen_bool(0.015) {
            push(at + rng.gen_range(2..120), "bounced", Detail::Empty);
            return;
        }
        if !rng.gen_bool(0.97) {
            return; // no receipt ever came back
        }
        let delivered = at + rng.gen_range(1..30);
        push(delivered, "delivered", Detail::Empty);
        if channel == "sms" && rng.gen_bool(0.003) {
            let text = REPLIES[rng.gen_range(0..REPLIES.len())];
            let replied = (delivered + rng.gen_range(30..3_600)).min(end - 1);
            push(replied, "replied", Detail::Reply(text));
            // Replying TD (退订) is how SMS recipients in China opt out.
            if matches!(text, "TD" | "退订") {
                push(replied + 1, "unsubscribed", Detail::Empty);
                self.sms = false;
            }
        } else if channel == "email" && rng.gen_bool(self.engagement) {
            let opened = delivered + exponential(rng, 5_400.0).min(DAY as f64) as u64;
            push(opened.min(end), "opened", Detail::Empty);
            if rng.gen_bool(0.15) {
                push(
                    (opened + rng.gen_range(5..300)).min(end),
                    "clicked",
                    Detail::Click,
                );
            }
            // 0.25% of opens is about 0.05% of deliveries.
            if rng.gen_bool(0.0025) {
                push((opened + 60).min(end), "unsubscribed", Detail::Empty);
                self.email = false;
            }
        }
        if let Campaign::Seminar(_, starts) = campaign {
            // Answers come within three days and before the seminar starts.
            let answered = rng.gen_range(delivered + 1..starts.min(delivered + 3 * DAY));
            // A quarter accept, a tenth decline; 70% of those who accept come.
            let answer = rng.gen_range(0..100);
            if (25..35).contains(&answer) {
                push(answered, "rsvp_no", Detail::Empty);
            } else if answer < 25 {
                push(answered, "rsvp_yes", Detail::Empty);
            }
            if answer < 25 && rng.gen_bool(0.7) {
                push(starts + rng.gen_range(0..1_800), "attended", Detail::Empty);
            }
        }
    }
}

fn weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use std::collections::{HashMap, HashSet};

    type Row = HashMap<String, String>;

    fn opts(clients: u64, seed: u64) -> SyntheticOptions {
        let today = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        SyntheticOptions {
            clients,
            seed,
            history_days: 30,
            today,
        }
    }

    /// The CSV bytes and its rows by column name, checking each row's width.
    fn clients(o: &SyntheticOptions) -> (Vec<u8>, Vec<Row>) {
        let mut bytes = Vec::new();
        write_clients_csv(o, &mut bytes).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(&bytes[..]);
        let header = reader.headers().unwrap().clone();
        assert_eq!(header.iter().collect::<Vec<_>>().join(","), HEADER);
        let rows = reader.records().map(|r| {
            let r = r.unwrap();
            assert_eq!(r.len(), header.len());
            header
                .iter()
                .zip(&r)
                .map(|(k, v)| (k.into(), v.into()))
                .collect()
        });
        (bytes.clone(), rows.collect())
    }

    fn history(o: &SyntheticOptions) -> (Vec<u8>, u64) {
        let mut bytes = Vec::new();
        let n = write_history_jsonl(o, &mut bytes).unwrap();
        (bytes, n)
    }

    #[test]
    fn same_seed_same_bytes_and_different_seed_different_bytes() {
        let (a, b, c) = (opts(300, 7), opts(300, 7), opts(300, 8));
        assert_eq!(clients(&a).0, clients(&b).0);
        assert_ne!(clients(&a).0, clients(&c).0);
        assert_eq!(history(&a).0, history(&b).0);
        assert_ne!(history(&a).0, history(&c).0);
    }

    #[test]
    fn clients_are_unique_and_consistent() {
        let (o, (_, rows)) = (opts(5_000, 1), clients(&opts(5_000, 1)));
        let ids: HashSet<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
        let emails: Vec<&str> = rows.iter().map(|r| r["email"].as_str()).collect();
        let emails: Vec<&str> = emails.into_iter().filter(|e| !e.is_empty()).collect();
        assert_eq!((ids.len(), rows[0]["id"].as_str()), (5_000, "0000000001"));
        assert_eq!(emails.iter().collect::<HashSet<_>>().len(), emails.len());
        for r in &rows {
            assert!(r["id"].len() == 10 && r["id"].bytes().all(|b| b.is_ascii_digit()));
            let (local, domain) = r["email"].split_once('@').unwrap_or(("", ""));
            assert!(r["email"].is_empty() || !local.is_empty() && domain.contains('.'));
            assert!(!r["email"].is_empty() || r["consent_email"] == "false");
            assert!(!r["phone"].is_empty() || r["consent_sms"] == "false");
            let digits = r["phone"].trim_start_matches("+86 ");
            assert!(digits.is_empty() || digits.len() == 11 && digits.starts_with('1'));
            assert!(r["lowest_risk_category"] == "false" || r["risk_level"] == "C1");
            assert_eq!(r["risk_level"].is_empty(), r["risk_assessed_on"].is_empty());
            let assets: f64 = r["assets"].parse().unwrap();
            assert!(assets >= 0.0);
            assert!(!r["tags"].contains("high_net_worth") || assets >= 5_000_000.0);
            let date = |k: &str| NaiveDate::parse_from_str(&r[k], "%Y-%m-%d").ok();
            let (born, opened) = (date("birthday").unwrap(), date("opened_on").unwrap());
            assert!((20..=85).contains(&o.today.years_since(born).unwrap()));
            assert!(opened >= born + Months::new(216) && opened <= o.today);
            assert!(date("last_trade_on").is_none_or(|d| d >= opened && d < o.today));
        }
    }

    #[test]
    fn risk_levels_follow_the_target_spread() {
        let (_, rows) = clients(&opts(20_000, 3));
        let share = |f: &dyn Fn(&Row) -> bool| {
            rows.iter().filter(|r| f(r)).count() as f64 / rows.len() as f64
        };
        let targets = [0.02, 0.098, 0.245, 0.343, 0.196, 0.098];
        for (level, target) in ["", "C1", "C2", "C3", "C4", "C5"].iter().zip(targets) {
            let got = share(&|r| r["risk_level"] == *level);
            assert!((got - target).abs() < 0.015, "{level}: {got} vs {target}");
        }
        let lowest = share(&|r| r["lowest_risk_category"] == "true");
        assert!((0.005..0.015).contains(&lowest), "lowest {lowest}");
    }

    #[test]
    fn history_lines_are_valid_and_reference_known_clients() {
        let o = opts(2_000, 5);
        let ((_, rows), (bytes, n)) = (clients(&o), history(&o));
        let start = DateTime::parse_from_rfc3339("2026-10-21T00:00:00+08:00").unwrap();
        let end = start + chrono::Duration::days(30);
        let kinds =
            "sent delivered bounced opened clicked unsubscribed replied rsvp_yes rsvp_no attended";
        let mut last = HashMap::new();
        let text = String::from_utf8(bytes).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}: {line}"));
            let (id, kind, channel) = (field("client"), field("type"), field("channel"));
            let index: usize = id.parse().unwrap();
            assert!(id.len() == 10 && (1..=rows.len()).contains(&index));
            let time = DateTime::parse_from_rfc3339(field("time")).unwrap();
            assert!(time >= start && time < end, "{line}");
            // In time order within a client.
            assert!(last.insert(id.to_owned(), time).is_none_or(|t| t <= time));
            assert!(kinds.split(' ').any(|k| k == kind) && ["email", "sms"].contains(&channel));
            let consent = &rows[index - 1][&format!("consent_{channel}")];
            assert!(kind != "sent" || consent == "true", "{line}");
            assert!(!field("campaign").is_empty() && !field("campaign_kind").is_empty());
            assert!(v["details"].is_object());
        }
        assert_eq!(text.lines().count() as u64, n);
        assert!(n > 10_000, "only {n} events");
    }
}
