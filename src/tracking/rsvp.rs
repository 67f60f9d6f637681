//! Answers to seminar invitations: the signed accept and decline links
//! lead to a page that shows the seminar and asks to confirm (a GET never
//! answers, so a mail scanner following links cannot), and an SMS reply
//! (`1` / `2` by default) answers the last invitation sent to that number.
//! Each answer takes its place in the store under the seminar's lock, is
//! an event on the client's record, and queues the service notice that
//! tells the client (and anyone it promotes) where they stand.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::server::{event, page, unavailable, Refusal, TrackingState};
use super::token::Action;
use crate::channel::Channel;
use crate::event::EventKind;
use crate::seminar::notice::{self, Notice};
use crate::store::runs::{DeliveryContext, Run};
use crate::store::seminars::Standing;

/// What an answer needs of the seminar, from the invitation's snapshot.
#[derive(Debug, Deserialize)]
pub(super) struct Particulars {
    name: String,
    title: String,
    starts_at: DateTime<chrono::FixedOffset>,
    ends_at: DateTime<chrono::FixedOffset>,
    rsvp_deadline: DateTime<Utc>,
    venue: crate::seminar::Venue,
}

/// An invitation run with its seminar.
pub(super) struct Invitation {
    run: Run,
    seminar: Particulars,
}

impl TrackingState {
    /// The invitation run `d` belongs to, once per run.
    async fn invitation(&self, d: &DeliveryContext) -> Result<Arc<Invitation>, Refusal> {
        if d.kind != "seminar_invitation" {
            return Err(Refusal::BadLink);
        }
        if let Some(i) = self.invitations.get(&d.run_id) {
            return Ok(i);
        }
        let run = self
            .store
            .run(d.run_id)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or(Refusal::BadLink)?;
        let seminar: Particulars =
            serde_json::from_str(&run.content).map_err(|_| Refusal::BadLink)?;
        let i = Arc::new(Invitation { run, seminar });
        self.invitations.insert(d.run_id, i.clone());
        Ok(i)
    }

    /// The delivery an RSVP token stands for, and whether it accepts.
    async fn rsvp_delivery(&self, token: &str) -> Result<(Arc<DeliveryContext>, bool), Refusal> {
        match self.delivery(token, "", Action::RsvpYes).await {
            Ok(d) => Ok((d, true)),
            Err(Refusal::BadLink) => Ok((self.delivery(token, "", Action::RsvpNo).await?, false)),
            Err(e) => Err(e),
        }
    }
}

/// Where an answer left the client.
#[derive(Debug)]
pub(super) enum Answered {
    Recorded(Standing),
    /// After the deadline: nothing changed.
    Closed,
}

/// Records `yes` or no from the client of `d`, answered by `via`.
pub(super) async fn answer(
    s: &TrackingState,
    d: &DeliveryContext,
    yes: bool,
    via: Channel,
    at: DateTime<Utc>,
) -> Result<Answered, Refusal> {
    let inv = s.invitation(d).await?;
    if at > inv.seminar.rsvp_deadline {
        return Ok(Answered::Closed);
    }
    let (store, name) = (&*s.store, inv.seminar.name.as_str());
    let standing = if yes {
        let standing = store
            .accept(name, &d.client_id, at, Some(via))
            .await
            .map_err(|e| unavailable(&e))?;
        if let Some(n) = Notice::of(standing) {
            tell(s, &inv, &d.client_id, n, standing, Some(via), at).await;
        }
        standing
    } else {
        let declined = store
            .decline(name, &d.client_id, at)
            .await
            .map_err(|e| unavailable(&e))?;
        if let Some(promoted) = &declined.promoted {
            let via = declined
                .promoted_via
                .as_deref()
                .and_then(|c| Channel::parse(c).ok());
            let standing = store
                .standing(name, promoted)
                .await
                .map_err(|e| unavailable(&e))?
                .unwrap_or(Standing::Declined);
            tell(s, &inv, promoted, Notice::Promoted, standing, via, at).await;
        }
        Standing::Declined
    };
    let kind = if yes {
        EventKind::RsvpYes
    } else {
        EventKind::RsvpNo
    };
    let mut details = notice::told(standing, None);
    details["seminar"] = json!(name);
    details["via"] = json!(via);
    if let Some(mut e) = event(d, kind, at, details) {
        // The answer came by `via`, whatever channel the invitation used.
        e.channel = Some(via);
        s.record(e).await?;
    }
    Ok(Answered::Recorded(standing))
}

/// Queues a notice; a failure is logged, not the answer's: the answer is
/// already stored and the page tells the client where they stand.
async fn tell(
    s: &TrackingState,
    inv: &Invitation,
    client: &str,
    n: Notice,
    standing: Standing,
    via: Option<Channel>,
    at: DateTime<Utc>,
) {
    let run = &inv.run;
    let result = async {
        let seminar = match notice::current(&*s.store, &inv.seminar.name).await? {
            Some(now) => now,
            None => serde_json::from_str(&run.content)?,
        };
        notice::queue(
            &*s.store,
            &run.campaign,
            &seminar,
            client,
            n,
            notice::told(standing, Some(n)),
            via,
            at,
        )
        .await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(run = run.id, notice = n.as_str(), error = %format!("{e:#}"), "seminar notice could not be queued");
    }
}

/// `GET /r/TOKEN`: the seminar and the answer the link gives, to confirm.
pub async fn rsvp_page(State(s): State<Arc<TrackingState>>, Path(token): Path<String>) -> Response {
    let result = async {
        let (d, yes) = s.rsvp_delivery(&token).await?;
        let inv = s.invitation(&d).await?;
        let now = s
            .store
            .standing(&inv.seminar.name, &d.client_id)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok::<_, Refusal>((inv, yes, now))
    }
    .await;
    let (inv, yes, now) = match result {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let about = particulars(&inv.seminar);
    let current = now.map_or(String::new(), |st| {
        format!(r#"<p class="note">您目前的回复：{}</p>"#, describe(st))
    });
    if Utc::now() > inv.seminar.rsvp_deadline {
        return page(&html_escape(&inv.seminar.title), &format!("{about}{current}<p>报名已截止，回复不能再更改。</p><p class=\"note\">Answers closed at the RSVP deadline.</p>")).into_response();
    }
    let (question, button) = if yes {
        ("确认报名参加吗？", "确认报名")
    } else {
        ("确认不参加吗？", "确认不参加")
    };
    page(
        &html_escape(&inv.seminar.title),
        &format!(
            r#"{about}{current}<p>{question}</p>
<form method="post"><button type="submit">{button}</button></form>"#
        ),
    )
    .into_response()
}

/// `POST /r/TOKEN`: records the answer and shows where the client stands.
pub async fn rsvp(State(s): State<Arc<TrackingState>>, Path(token): Path<String>) -> Response {
    let (d, yes) = match s.rsvp_delivery(&token).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let via = Channel::parse(&d.channel).unwrap_or(Channel::Email);
    match answer(&s, &d, yes, via, Utc::now()).await {
        Ok(Answered::Recorded(standing)) => {
            let title = s
                .invitation(&d)
                .await
                .map(|i| i.seminar.title.clone())
                .unwrap_or_default();
            let told = notice::told(standing, None);
            page(
                &html_escape(&title),
                &format!(
                    r#"<p id="answer" data-status="{}" data-position="{}" data-place="{}">{}</p>"#,
                    told["status"].as_str().unwrap_or(""),
                    told["position"],
                    told["place"],
                    describe(standing)
                ),
            )
            .into_response()
        }
        Ok(Answered::Closed) => (
            StatusCode::CONFLICT,
            page("报名已截止", "<p>报名已截止，回复未更改。</p><p class=\"note\">Answers closed at the RSVP deadline; nothing was changed.</p>"),
        )
            .into_response(),
        Err(r) => r.into_response(),
    }
}

fn describe(standing: Standing) -> String {
    match standing {
        Standing::Seated { .. } => "报名成功，您的席位已确认。".into(),
        Standing::Waitlisted { place } => {
            format!("名额已满，您已进入候补名单第 {place} 位；有空位时我们会立即通知您。")
        }
        Standing::Declined => "已登记您不参加。感谢您的回复。".into(),
    }
}

fn particulars(p: &Particulars) -> String {
    let venue = [p.venue.name.as_deref(), p.venue.address.as_deref()]
        .into_iter()
        .flatten()
        .map(html_escape)
        .collect::<Vec<_>>()
        .join("，");
    format!(
        "<p>时间：{}–{}<br>地点：{venue}</p>",
        p.starts_at.format("%Y年%m月%d日 %H:%M"),
        p.ends_at.format("%H:%M"),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
