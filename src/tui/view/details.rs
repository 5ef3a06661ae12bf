//! The details pane: everything known about the selected image or entry.

use super::list::{badge_text, fs_name};
use super::{Theme, human_size};
use crate::boot::entry_id::entry_id;
use crate::boot::plan::PlanError;
use crate::model::{EntrySource, ImageKind, MountState};
use crate::tui::model::Model;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let para = Paragraph::new(lines(model, theme))
        .block(theme.block(" Details "))
        .wrap(Wrap { trim: false });
    frame.render_widget(para, area);
}

fn field<'a>(theme: &Theme, name: &'a str, value: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{name}: "), theme.label()),
        Span::raw(value),
    ])
}

fn lines<'a>(model: &'a Model, theme: &Theme) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    let Some(row) = model.selected_row() else {
        return out;
    };
    let Some((v, i)) = row.image() else {
        return out;
    };
    let Some(volume) = model.snapshot.volumes.get(v) else {
        return out;
    };
    let Some(image) = volume.images.get(i) else {
        return out;
    };
    let entry = match row {
        crate::tui::model::Row::Entry { entry, .. } => {
            model.snapshot.entry(entry).map(|e| (entry, e))
        }
        _ => None,
    };
    if let Some((r, e)) = entry {
        let mut title = vec![Span::styled(e.title.clone(), theme.header())];
        if model.default == Some(r) {
            title.push(Span::styled(" (default)", theme.good()));
        }
        out.push(Line::from(title));
        if let Some(ver) = &e.version {
            out.push(field(theme, "Kernel", ver.clone()));
        }
    }
    out.push(field(theme, "Image", image.path.clone()));
    out.push(field(
        theme,
        "Type",
        match &image.kind {
            ImageKind::FixedVhd { data_size } => format!("fixed VHD, {}", human_size(*data_size)),
            ImageKind::DynamicVhd => format!("dynamic VHD, {} file", human_size(image.file_size)),
            ImageKind::DifferencingVhd => "differencing VHD".into(),
            ImageKind::Raw { data_size } => format!("raw image, {}", human_size(*data_size)),
            ImageKind::Unreadable => "unreadable".into(),
        },
    ));
    if let Some(t) = image.trial {
        out.push(field(
            theme,
            "Trial",
            if t.merging {
                format!("{}; m finishes the merge", crate::trial::badge(t))
            } else {
                format!(
                    "{}; t boots it again, m keeps it, x discards it",
                    crate::trial::badge(t)
                )
            },
        ));
    }
    let mut host = format!(
        "{} ({}, {})",
        volume.display_name(),
        volume.device.display(),
        fs_name(volume)
    );
    for b in &volume.badges {
        host.push_str(&format!(" [{}]", badge_text(*b)));
    }
    out.push(field(theme, "Host", host));
    if let Some(u) = &volume.uuid {
        out.push(field(theme, "UUID", u.clone()));
    }
    if let Some(u) = &volume.partuuid {
        out.push(field(theme, "PARTUUID", u.clone()));
    }
    if let MountState::Mounted { at } = &volume.mount {
        out.push(field(
            theme,
            "Mount",
            format!("{} (read-only)", at.display()),
        ));
    }
    if let Some((_, e)) = entry {
        out.push(field(
            theme,
            "Source",
            match &e.source {
                EntrySource::Uki { path, .. } => format!("UKI {path}"),
                EntrySource::Bls { conf, .. } => format!("BLS {conf}"),
                EntrySource::Ext4 { linux, .. } => format!("ext4 {linux}"),
                EntrySource::Mounted { fs, linux, .. } => format!("{} {linux}", fs.name()),
            },
        ));
        // The name `bootctl set-oneshot` and `default = @saved` use.
        if let Some(id) = entry.and_then(|(r, _)| entry_id(&model.snapshot, r)) {
            let id = match model.efi_variables {
                Some(false) => format!("{id} (EFI variables: not available here)"),
                _ => id,
            };
            out.push(field(theme, "Entry id", id));
        }
        out.push(Line::styled("Command line:", theme.label()));
        out.push(Line::raw(e.cmdline.clone()));
    } else if image.entries.len() > 1 {
        out.push(field(theme, "Entries", image.entries.len().to_string()));
    }
    if !image.problems.is_empty() {
        out.push(Line::styled("Problems:", theme.label()));
        for p in &image.problems {
            let style = if p.blocks_boot {
                theme.bad()
            } else {
                theme.warn()
            };
            out.push(Line::from(vec![
                Span::styled(format!("{} ", theme.bullet()), style),
                Span::styled(p.what.clone(), style),
            ]));
            if !p.hint.is_empty() {
                out.push(Line::raw(format!("  {}", p.hint)));
            }
        }
    }
    // A refusal that is not one of the image's own problems (the host's
    // state, the command line, no kernel) would otherwise go unexplained.
    if let Some(why) = row
        .blocker()
        .filter(|b| !matches!(b, PlanError::ImageBlocked { .. }))
    {
        out.push(Line::styled("Cannot boot:", theme.label()));
        out.push(Line::styled(why.cause(), theme.bad()));
        out.push(Line::raw(format!("  {}", why.hint())));
    }
    out
}
