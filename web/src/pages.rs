//! The pages: one layout, a main fragment per page, the navigation the
//! caller's permissions open.

use insights_api::Principal;
use insights_core::domain::Permission;

/// One page of the UI.
pub struct Page {
    /// Route pattern.
    pub path: &'static str,
    pub title: &'static str,
    /// `body[data-page]` and the name of its script in `/static/`.
    pub id: &'static str,
    /// The caller needs one of these (none: any signed-in tenant user).
    pub needs: &'static [Permission],
    /// Label in the navigation (`None`: not listed, e.g. a recording).
    pub nav: Option<&'static str>,
    /// Whether it is an administration page (listed under "Admin").
    pub admin: bool,
    main: &'static str,
}

use Permission as P;

/// Every page but the login page.
pub static PAGES: &[Page] = &[
    Page {
        path: "/search",
        title: "Search recordings",
        id: "search",
        needs: &[P::Search],
        nav: Some("Search"),
        admin: false,
        main: include_str!("../pages/search.html"),
    },
    Page {
        path: "/recordings/{id}",
        title: "Recording",
        id: "recording",
        needs: &[P::Search],
        nav: None,
        admin: false,
        main: include_str!("../pages/recording.html"),
    },
    Page {
        path: "/export",
        title: "Export to Excel",
        id: "export",
        needs: &[P::Export],
        nav: Some("Export"),
        admin: false,
        main: include_str!("../pages/export.html"),
    },
    Page {
        path: "/access-requests",
        title: "Access requests",
        id: "access",
        needs: &[P::Play, P::ApproveAccess],
        nav: Some("Access requests"),
        admin: false,
        main: include_str!("../pages/access.html"),
    },
    Page {
        path: "/audit",
        title: "Audit log",
        id: "audit",
        needs: &[P::ViewAudit],
        nav: Some("Audit log"),
        admin: false,
        main: include_str!("../pages/audit.html"),
    },
    Page {
        path: "/gdpr",
        title: "Data subject requests",
        id: "gdpr",
        needs: &[P::GdprActions],
        nav: Some("Data subjects"),
        admin: false,
        main: include_str!("../pages/gdpr.html"),
    },
    Page {
        path: "/admin/holds",
        title: "Legal holds",
        id: "holds",
        needs: &[P::ManageLegalHolds],
        nav: Some("Legal holds"),
        admin: true,
        main: include_str!("../pages/holds.html"),
    },
    Page {
        path: "/admin/retention",
        title: "Retention policies",
        id: "retention",
        needs: &[P::ManageRetention],
        nav: Some("Retention"),
        admin: true,
        main: include_str!("../pages/retention.html"),
    },
    Page {
        path: "/admin/users",
        title: "Users and security profiles",
        id: "users",
        needs: &[P::ManageUsers],
        nav: Some("Users"),
        admin: true,
        main: include_str!("../pages/users.html"),
    },
    Page {
        path: "/admin/settings",
        title: "Tenant settings",
        id: "settings",
        needs: &[P::ManageSettings],
        nav: Some("Settings"),
        admin: true,
        main: include_str!("../pages/settings.html"),
    },
    Page {
        path: "/admin/recording-policy",
        title: "Recording policy",
        id: "recording-policy",
        needs: &[P::ManageSettings],
        nav: Some("Recording policy"),
        admin: true,
        main: include_str!("../pages/recording-policy.html"),
    },
    Page {
        path: "/completeness",
        title: "Completeness",
        id: "completeness",
        needs: &[P::ViewCompleteness],
        nav: Some("Completeness"),
        admin: false,
        main: include_str!("../pages/completeness.html"),
    },
    Page {
        path: "/admin/alerts",
        title: "Alerts",
        id: "alerts",
        needs: &[P::ManageSettings],
        nav: Some("Alerts"),
        admin: true,
        main: include_str!("../pages/alerts.html"),
    },
];

#[cfg(test)]
impl Page {
    /// The page's main fragment.
    pub fn main_html(&self) -> &'static str {
        self.main
    }
}

/// Why `p` may not open `page`, if they may not.
pub fn refusal(p: &Principal, page: &Page) -> Option<&'static str> {
    if p.tenant_id.is_none() {
        return Some(
            "Platform operators run the service; they see no recordings, transcripts or tenant data.",
        );
    }
    if page.needs.is_empty() || page.needs.iter().any(|n| p.has(*n)) {
        None
    } else if page.admin {
        Some("This administration page needs a permission your role does not have.")
    } else {
        Some("This page needs a permission your role does not have.")
    }
}

/// The first listed page `p` may open.
pub fn first_page(p: &Principal) -> Option<&'static str> {
    PAGES
        .iter()
        .find(|pg| pg.nav.is_some() && refusal(p, pg).is_none())
        .map(|pg| pg.path)
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn head(title: &str, script: Option<&str>, csrf: Option<&str>) -> String {
    let csrf = csrf
        .map(|t| format!(r#"<meta name="csrf-token" content="{}">"#, esc(t)))
        .unwrap_or_default();
    let script = script
        .map(|s| format!(r#"<script src="/static/{s}.js" defer></script>"#))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
{csrf}
<title>{} · Insights</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/common.js" defer></script>
{script}
</head>
"#,
        esc(title)
    )
}

fn nav(p: &Principal, current: &str) -> String {
    let mut items = String::new();
    for pg in PAGES {
        let Some(label) = pg.nav else { continue };
        if refusal(p, pg).is_some() {
            continue;
        }
        let cur = if pg.path == current {
            r#" aria-current="page""#
        } else {
            ""
        };
        let class = if pg.admin { r#" class="admin""# } else { "" };
        items.push_str(&format!(
            r#"<li{class}><a href="{}"{cur}>{label}</a></li>"#,
            pg.path
        ));
    }
    format!(
        r#"<header class="top">
<a class="brand" href="/">Insights</a>
<nav aria-label="Main"><ul>{items}</ul></nav>
<div class="who"><span class="role" title="Your role">{}</span>
<button id="logout" type="button" class="secondary">Sign out</button></div>
</header>
"#,
        esc(p.role.as_str())
    )
}

fn permissions(p: &Principal) -> String {
    p.permissions
        .iter()
        .map(|x| x.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A page for a caller allowed to see it.
pub fn render(p: &Principal, page: &Page) -> String {
    format!(
        r##"{}<body data-page="{}" data-permissions="{}">
<a class="skip" href="#main">Skip to content</a>
{}<main id="main" tabindex="-1">
<h1 id="page-title">{}</h1>
<div id="error" class="error" role="alert" hidden></div>
<div id="status" class="status" role="status" aria-live="polite"></div>
{}
</main>
</body>
</html>
"##,
        head(page.title, Some(page.id), p.csrf_token.as_deref()),
        page.id,
        esc(&permissions(p)),
        nav(p, page.path),
        esc(page.title),
        page.main
    )
}

/// The 403 page: says why, keeps the navigation the caller has.
pub fn forbidden(p: &Principal, page: &Page, why: &str) -> String {
    format!(
        r##"{}<body data-page="forbidden">
<a class="skip" href="#main">Skip to content</a>
{}<main id="main" tabindex="-1">
<h1>Not allowed</h1>
<div class="error" id="forbidden" role="alert"><p><strong>{}</strong> is not available to you.</p><p>{}</p></div>
</main>
</body>
</html>
"##,
        head("Not allowed", None, p.csrf_token.as_deref()),
        nav(p, ""),
        esc(page.title),
        esc(why)
    )
}

/// A page for an error before anyone is known.
pub fn error_page(title: &str, detail: &str) -> String {
    format!(
        r#"{}<body data-page="error">
<main id="main" tabindex="-1">
<h1>{}</h1>
<div class="error" role="alert"><p>{}</p><p><a href="/login">Sign in again</a></p></div>
</main>
</body>
</html>
"#,
        head(title, None, None),
        esc(title),
        esc(detail)
    )
}

/// The sign-in page.
pub fn login() -> String {
    format!(
        r#"{}<body data-page="login" class="login">
<main id="main" tabindex="-1">
{}
</main>
</body>
</html>
"#,
        head("Sign in", Some("login"), None),
        include_str!("../pages/login.html")
    )
}

/// The first-run setup page (the token comes in the link's fragment).
pub fn setup() -> String {
    format!(
        r#"{}<body data-page="setup" class="login">
<main id="main" tabindex="-1">
{}
</main>
</body>
</html>
"#,
        head("Set up Insights", Some("setup"), None),
        include_str!("../pages/setup.html")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
