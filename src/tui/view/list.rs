//! The main list: volumes as group headers, images and entries under them.

use super::{Theme, human_size};
use crate::discovery::{BootEntry, Image, MountState, Volume, VolumeBadge};
use crate::tui::model::{Model, Row};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{HighlightSpacing, List, ListItem, ListState};

pub fn render(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let items: Vec<ListItem> = model
        .rows
        .iter()
        .map(|row| ListItem::new(row_line(model, *row, theme)))
        .collect();
    let list = List::new(items)
        .block(theme.block(" Boot entries "))
        .highlight_style(theme.selected())
        .highlight_symbol(theme.selection_marker())
        .highlight_spacing(HighlightSpacing::Always);
    let mut state =
        ListState::default().with_selected(model.selected_row().map(|_| model.selected));
    frame.render_stateful_widget(list, area, &mut state);
}

fn row_line<'a>(model: &'a Model, row: Row, theme: &Theme) -> Line<'a> {
    let snap = &model.snapshot;
    match row {
        Row::Volume { volume } => match snap.volumes.get(volume) {
            Some(v) => volume_line(v, theme),
            None => Line::raw(""),
        },
        Row::Image { volume, image, .. } => {
            match snap.volumes.get(volume).and_then(|v| v.images.get(image)) {
                Some(i) => image_line(i, theme),
                None => Line::raw(""),
            }
        }
        Row::Entry { entry, nested } => {
            let is_default = model.default == Some(entry);
            match (snap.image(entry), snap.entry(entry)) {
                (Some(_), Some(e)) if nested => entry_line(e, is_default, "    ", theme),
                (Some(i), Some(e)) => single_entry_line(i, e, is_default, theme),
                _ => Line::raw(""),
            }
        }
    }
}

fn volume_line<'a>(v: &'a Volume, theme: &Theme) -> Line<'a> {
    let mut spans = vec![
        Span::styled(v.display_name(), theme.header()),
        Span::styled(
            format!(" {} {}", fs_name(v), human_size(v.size)),
            theme.dim(),
        ),
    ];
    for badge in &v.badges {
        spans.push(Span::styled(
            format!(" [{}]", badge_text(*badge)),
            theme.warn(),
        ));
    }
    match &v.mount {
        MountState::Mounted { .. } => {}
        MountState::Refused { reason } => {
            spans.push(Span::styled(format!(" not mounted: {reason}"), theme.bad()))
        }
        MountState::NotMounted => spans.push(Span::styled(" not mounted", theme.bad())),
    }
    Line::from(spans)
}

pub fn fs_name(v: &Volume) -> String {
    match &v.fstype {
        crate::discovery::FsType::Ntfs => "NTFS".into(),
        crate::discovery::FsType::Exfat => "exFAT".into(),
        crate::discovery::FsType::Other(s) => s.clone(),
    }
}

pub fn badge_text(b: VolumeBadge) -> &'static str {
    match b {
        VolumeBadge::Dirty => "dirty",
        VolumeBadge::Hibernated => "hibernated",
        VolumeBadge::ReadOnly => "read-only",
    }
}

fn image_status<'a>(i: &'a Image, theme: &Theme) -> Span<'a> {
    match i.problems.iter().find(|p| p.blocks_boot) {
        Some(p) => Span::styled(p.what.as_str(), theme.bad()),
        None if i.entries.is_empty() => Span::styled("no boot entry", theme.bad()),
        None => Span::styled("bootable", theme.good()),
    }
}

fn image_line<'a>(i: &'a Image, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::raw("  "),
        Span::raw(i.name()),
        Span::styled(format!(" {} ", human_size(i.file_size)), theme.dim()),
        image_status(i, theme),
    ])
}

fn entry_text(e: &BootEntry) -> String {
    match &e.version {
        Some(v) => format!("{} ({v})", e.title),
        None => e.title.clone(),
    }
}

fn default_mark<'a>(is_default: bool, theme: &Theme) -> Span<'a> {
    if is_default {
        Span::styled(" *default", theme.good())
    } else {
        Span::raw("")
    }
}

fn entry_line<'a>(e: &'a BootEntry, is_default: bool, indent: &'a str, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::raw(indent),
        Span::raw(entry_text(e)),
        default_mark(is_default, theme),
    ])
}

fn single_entry_line<'a>(
    i: &'a Image,
    e: &'a BootEntry,
    is_default: bool,
    theme: &Theme,
) -> Line<'a> {
    let mut spans = vec![Span::raw("  "), Span::raw(i.name()), Span::raw(" ")];
    if i.is_bootable() {
        spans.push(Span::styled(entry_text(e), theme.label()));
    } else {
        spans.push(image_status(i, theme));
    }
    spans.push(default_mark(is_default, theme));
    Line::from(spans)
}
