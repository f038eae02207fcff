//! For admins: the audit log, and the accounts (add one, give one a new
//! password or role, disable one).

use serde_json::json;

use super::auth::{self, Role};
use super::html::{csrf, esc, page, table, time};
use super::{audit, Ctx, Outcome};

pub async fn audit_log(ctx: &Ctx<'_>) -> Outcome {
    let before = ctx.param("before").and_then(|b| b.parse().ok());
    let user = ctx.param("user");
    let entries = match audit::recent(&ctx.hq.pool, 200, before, user).await {
        Ok(e) => e,
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                time(Some(e.at_ms)),
                esc(e.username.as_deref().unwrap_or("—")),
                esc(&e.address),
                esc(&e.action),
                esc(e.target.as_deref().unwrap_or("")),
                esc(&e.detail.to_string()),
            ]
        })
        .collect();
    let mut body = format!(
        "<form method=\"get\" action=\"/console/audit\"><label>Who <input name=\"user\" value=\"{}\"></label> <button>Show</button></form>",
        esc(user.unwrap_or(""))
    );
    body.push_str(&table(
        "audit",
        &["when", "who", "from", "action", "on", "detail"],
        &rows,
    ));
    // Older entries page by page: a flood of new ones hides nothing.
    if let Some(last) = entries.last().filter(|_| entries.len() == 200) {
        body.push_str(&format!(
            "<p><a href=\"/console/audit?before={}&amp;user={}\">Older entries</a></p>",
            last.id,
            esc(&super::html::url_part(user.unwrap_or("")))
        ));
    }
    Outcome::Page(page("Audit log", Some(&ctx.session), None, &body, None))
}

pub async fn accounts(ctx: &Ctx<'_>) -> Outcome {
    let list = match auth::accounts(&ctx.hq.pool).await {
        Ok(l) => l,
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|(name, role, disabled, created)| {
            let disable = if *disabled {
                "disabled".to_string()
            } else {
                format!(
                    "<form class=\"inline\" method=\"post\" action=\"/console/accounts\">{}\
                     <input type=\"hidden\" name=\"action\" value=\"disable\"><input type=\"hidden\" name=\"username\" value=\"{}\">\
                     <button>Disable</button></form>",
                    csrf(&ctx.session),
                    esc(name)
                )
            };
            vec![esc(name), esc(role), time(Some(*created)), disable]
        })
        .collect();
    let notice = ctx.param("done").map(|d| match d {
        "set" => "Account saved; its old sessions ended.",
        _ => "Account disabled; its sessions ended.",
    });
    let body = format!(
        "{}<h2>Add an account, or set one's password and role</h2>\
         <form class=\"box\" method=\"post\" action=\"/console/accounts\" id=\"set-account\">{}\
         <input type=\"hidden\" name=\"action\" value=\"set\">\
         <label>Username <input name=\"username\" required></label>\
         <label>Role <select name=\"role\"><option>viewer</option><option>operator</option><option>admin</option></select></label>\
         <label>Password (12 characters or more) <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required></label>\
         <button>Save</button></form>",
        table("accounts", &["username", "role", "since", ""], &rows),
        csrf(&ctx.session)
    );
    Outcome::Page(page("Accounts", Some(&ctx.session), notice, &body, None))
}

pub async fn change_account(ctx: &Ctx<'_>) -> Outcome {
    let username = ctx.param("username").unwrap_or("").to_string();
    match ctx.param("action") {
        Some("set") => {
            let Some(role) = ctx.param("role").and_then(Role::parse) else {
                return Outcome::Refused(400, "role: viewer, operator or admin".into());
            };
            let password = ctx.raw("password").unwrap_or("");
            if let Err(e) = auth::set_account(&ctx.hq.pool, &username, role, password).await {
                return Outcome::Refused(400, e.to_string());
            }
            ctx.audit("account_set", &username, json!({"role": role.as_str()}))
                .await;
            Outcome::SeeOther("/console/accounts?done=set".into())
        }
        Some("disable") => {
            if username == ctx.session.username {
                return Outcome::Refused(409, "an admin does not disable their own account".into());
            }
            match auth::disable(&ctx.hq.pool, &username).await {
                Ok(true) => {
                    ctx.audit("account_disabled", &username, json!({})).await;
                    Outcome::SeeOther("/console/accounts?done=disabled".into())
                }
                Ok(false) => Outcome::Refused(404, format!("no account {username}")),
                Err(e) => Outcome::Refused(503, e.to_string()),
            }
        }
        _ => Outcome::Refused(400, "action: set or disable".into()),
    }
}
