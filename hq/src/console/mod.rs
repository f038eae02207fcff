//! The operators' console: server-rendered pages under `/console/` for the
//! shop manager and the finance team. Who may do what is an account's role;
//! a session is a cookie (`HttpOnly`, `Secure`, `SameSite=Strict`); every
//! form carries the session's CSRF token and a POST from another origin is
//! refused; every action goes to the audit log.
//!
//! - [`auth`]: accounts, argon2id, sessions, the login limit;
//! - [`audit`]: the log; [`html`]: escaping and the page frame;
//! - [`sales`]: finding a sale and its history, resolve and refund;
//! - [`queues`]: the attention queue and refunds in progress;
//! - [`reports`]: reconciliation, totals and their CSV;
//! - [`admin`]: the audit log's page and the accounts.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod html;
pub mod queues;
pub mod reports;
pub mod sales;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::http::Hq;
use auth::{Login, Role, Session};

type Answer = Response<Full<Bytes>>;

const COOKIE_NAME: &str = "tillpay_hq_session";

/// One request of a logged-in operator.
pub struct Ctx<'a> {
    pub hq: &'a Hq,
    pub session: Session,
    pub address: String,
    /// The query string's pairs, decoded.
    pub query: Vec<(String, String)>,
}

impl Ctx<'_> {
    /// A value as sent, untrimmed (a password).
    pub fn raw(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, v)| key == k && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    pub async fn audit(&self, action: &str, target: &str, detail: serde_json::Value) {
        if let Err(e) = audit::record(
            &self.hq.pool,
            Some(&self.session.username),
            &self.address,
            action,
            Some(target),
            detail,
        )
        .await
        {
            tracing::error!(action, target, error = %e, "audit entry not written");
        }
    }
}

/// What a page handler ends with.
pub enum Outcome {
    Page(String),
    /// 303 to a path of the console.
    SeeOther(String),
    /// A file to download: its name, type and bytes.
    File(String, &'static str, Vec<u8>),
    Refused(u16, String),
}

fn with_headers(mut r: Answer) -> Answer {
    let h = r.headers_mut();
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        // Not no-referrer: Chromium then sends `Origin: null` with the
        // console's own forms, which the origin check refuses.
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn respond(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    with_headers(r)
}

fn see_other(to: &str) -> Answer {
    let mut r = respond(303, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn refused(status: u16, who: Option<&Session>, why: &str) -> Answer {
    let body = format!("<p class=\"error\">{}</p>", html::esc(why));
    respond(
        status,
        "text/html; charset=utf-8",
        html::page("Refused", who, None, &body, None),
    )
}

fn cookie(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

/// A POST must come from a page of this console: an `Origin` of another
/// site (a page elsewhere posting a form here) is refused, whatever the
/// cookie.
fn same_origin(req: &Request<Incoming>, hq: &Hq) -> bool {
    let Some(origin) = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Browsers send Origin with every POST; a client that does not
        // still needs the session's CSRF token.
        return true;
    };
    // The address operators use, when configured: then a proxy that
    // rewrites Host, or a rebinding name, changes nothing.
    if let Some(o) = &hq.console_origin {
        return origin == o;
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

async fn form(req: Request<Incoming>) -> Option<Vec<(String, String)>> {
    let body = Limited::new(req.into_body(), 64 << 10)
        .collect()
        .await
        .ok()?
        .to_bytes();
    Some(crate::http::params(&String::from_utf8_lossy(&body)))
}

fn field<'a>(form: &'a [(String, String)], k: &str) -> &'a str {
    form.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Everything under `/console`.
pub async fn route(req: Request<Incoming>, hq: &Hq, address: String) -> Answer {
    let path = req.uri().path().to_string();
    let query = crate::http::params(req.uri().query().unwrap_or_default());
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/console/style.css") => {
            return respond(200, "text/css; charset=utf-8", include_str!("style.css"));
        }
        (&Method::GET, "/console/login") => {
            return respond(200, "text/html; charset=utf-8", login_page(None))
        }
        (&Method::POST, "/console/login") => return login(req, hq, address).await,
        _ => {}
    }
    let token = cookie(&req).map(str::to_string);
    let session = match &token {
        Some(t) => match auth::session(&hq.pool, t).await {
            Ok(s) => s,
            Err(e) => return refused(503, None, &e.to_string()),
        },
        None => None,
    };
    let Some(session) = session else {
        return see_other("/console/login");
    };
    let mut ctx = Ctx {
        hq,
        session,
        address,
        query,
    };
    let outcome = if method == Method::POST {
        if !same_origin(&req, hq) {
            tracing::warn!(user = %ctx.session.username, %path, "a POST from another site refused");
            ctx.audit("refused_cross_site", &path, json!({})).await;
            return refused(
                403,
                Some(&ctx.session),
                "refused: this form was not sent from the console",
            );
        }
        let Some(f) = form(req).await else {
            return refused(413, Some(&ctx.session), "a form is at most 64 KiB");
        };
        if !tillpay::gateway::constant_time_eq(
            field(&f, "csrf").as_bytes(),
            ctx.session.csrf.as_bytes(),
        ) {
            ctx.audit("refused_csrf", &path, json!({})).await;
            return refused(
                403,
                Some(&ctx.session),
                "refused: the form's token is missing or stale; reload the page",
            );
        }
        if path == "/console/logout" {
            if let Some(t) = &token {
                let _ = auth::logout(&hq.pool, t).await;
            }
            ctx.audit("logout", &ctx.session.username.clone(), json!({}))
                .await;
            let mut r = see_other("/console/login");
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{COOKIE_NAME}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
            )) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            return r;
        }
        // An action reads its form only, never the query string.
        ctx.query = f;
        post(&ctx, &path).await
    } else if method == Method::GET {
        get(&ctx, &path).await
    } else {
        Outcome::Refused(405, "GET or POST".into())
    };
    match outcome {
        Outcome::Page(body) => respond(200, "text/html; charset=utf-8", body),
        Outcome::SeeOther(to) => see_other(&to),
        Outcome::File(name, kind, bytes) => {
            let mut r = respond(200, kind, bytes);
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                r.headers_mut().insert("content-disposition", v);
            }
            r
        }
        Outcome::Refused(status, why) => refused(status, Some(&ctx.session), &why),
    }
}

fn need(ctx: &Ctx<'_>, role: Role) -> Option<Outcome> {
    (ctx.session.role < role).then(|| {
        Outcome::Refused(
            403,
            format!(
                "refused: this needs the {} role; {} is a {}",
                role.as_str(),
                ctx.session.username,
                ctx.session.role.as_str()
            ),
        )
    })
}

async fn get(ctx: &Ctx<'_>, path: &str) -> Outcome {
    match path {
        "/console" | "/console/" => queues::dashboard(ctx).await,
        "/console/sales" => sales::search(ctx).await,
        "/console/attention" => queues::attention(ctx).await,
        "/console/refunds" => queues::refunds(ctx).await,
        "/console/reconcile" => reports::reconcile(ctx).await,
        "/console/totals" => reports::totals(ctx, false).await,
        "/console/totals.csv" => reports::totals(ctx, true).await,
        "/console/shifts" => reports::shifts(ctx).await,
        "/console/audit" => match need(ctx, Role::Admin) {
            Some(r) => r,
            None => admin::audit_log(ctx).await,
        },
        "/console/accounts" => match need(ctx, Role::Admin) {
            Some(r) => r,
            None => admin::accounts(ctx).await,
        },
        p => match sale_path(p) {
            Some((till, order, None)) => sales::detail(ctx, &till, &order).await,
            _ => Outcome::Refused(404, format!("no such page: {p}")),
        },
    }
}

async fn post(ctx: &Ctx<'_>, path: &str) -> Outcome {
    if path == "/console/accounts" {
        return match need(ctx, Role::Admin) {
            Some(r) => r,
            None => admin::change_account(ctx).await,
        };
    }
    if let Some(r) = need(ctx, Role::Operator) {
        ctx.audit(
            "refused_role",
            path,
            json!({"role": ctx.session.role.as_str()}),
        )
        .await;
        return r;
    }
    match sale_path(path) {
        Some((till, order, Some(action))) if action == "resolve" => {
            sales::resolve(ctx, &till, &order).await
        }
        Some((till, order, Some(action))) if action == "refund" => {
            sales::refund(ctx, &till, &order).await
        }
        _ => Outcome::Refused(404, format!("no such action: {path}")),
    }
}

/// `/console/sales/{till}/{order}[/{action}]`, decoded.
fn sale_path(p: &str) -> Option<(String, String, Option<String>)> {
    let rest = p.strip_prefix("/console/sales/")?;
    let mut parts = rest.split('/');
    let till = crate::http::decode(parts.next()?);
    let order = crate::http::decode(parts.next()?);
    let action = parts.next().map(str::to_string);
    if parts.next().is_some() || till.is_empty() || order.is_empty() {
        return None;
    }
    Some((till, order, action))
}

fn login_page(error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", html::esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{err}<form class=\"box\" method=\"post\" action=\"/console/login\">\
         <label>Username <input name=\"username\" autocomplete=\"username\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button>Log in</button></form>"
    );
    html::page("Log in", None, None, &body, None)
}

async fn login(req: Request<Incoming>, hq: &Hq, address: String) -> Answer {
    if !same_origin(&req, hq) {
        return refused(
            403,
            None,
            "refused: this form was not sent from the console",
        );
    }
    let Some(f) = form(req).await else {
        return refused(413, None, "a form is at most 64 KiB");
    };
    let (username, password) = (field(&f, "username").trim(), field(&f, "password"));
    let result = if auth::valid_username(username) && password.len() <= 256 {
        auth::login(&hq.pool, username, password, &address).await
    } else {
        Ok(Login::Wrong)
    };
    // What the log keeps of a name: a valid one, or a cut-down mark of
    // one that is not (a flood of junk names stays small).
    let logged = if auth::valid_username(username) {
        username.to_string()
    } else {
        format!(
            "(invalid: {})",
            username.chars().take(16).collect::<String>()
        )
    };
    let note = |action: &'static str| {
        let pool = hq.pool.clone();
        let (user, addr) = (logged.clone(), address.clone());
        async move {
            if let Err(e) = audit::record(&pool, Some(&user), &addr, action, None, json!({})).await
            {
                tracing::error!(error = %e, "audit entry not written");
            }
        }
    };
    match result {
        Ok(Login::Ok(token, _)) => {
            note("login").await;
            let mut r = see_other("/console/");
            let c = format!(
                "{COOKIE_NAME}={token}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
                auth::SESSION_HOURS * 3600
            );
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        }
        Ok(Login::Wrong) => {
            note("login_failed").await;
            respond(
                401,
                "text/html; charset=utf-8",
                login_page(Some("Wrong username or password.")),
            )
        }
        Ok(Login::Locked) => {
            note("login_locked").await;
            tracing::warn!(user = %username, %address, "login refused: too many failures");
            respond(
                429,
                "text/html; charset=utf-8",
                login_page(Some(&format!(
                    "Too many failed logins: wait {} minutes, or ask an admin.",
                    auth::WINDOW_MIN
                ))),
            )
        }
        Err(e) => refused(503, None, &e.to_string()),
    }
}
