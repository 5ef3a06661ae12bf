//! The main list: volumes as group headers, images and entries under them.

use super::{Theme, human_size};
use crate::boot::plan::PlanError;
use crate::model::{BootEntry, Image, MountState, Volume, VolumeBadge};
use crate::tui::model::{Model, Row};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{HighlightSpacing, List, ListItem, ListState};

pub fn render(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    // Only the rows that can be on screen are formatted, so a key press
    // costs the same with 10 images as with 500.
    let visible = visible_rows(model, usize::from(area.height.saturating_sub(2)));
    let items: Vec<ListItem> = model
        .rows
        .get(visible.clone())
        .unwrap_or_default()
        .iter()
        .map(|row| ListItem::new(row_line(model, row, theme)))
        .collect();
    let list = List::new(items)
        .block(theme.block(" Boot entries "))
        .highlight_style(theme.selected())
        .highlight_symbol(theme.selection_marker())
        .highlight_spacing(HighlightSpacing::Always);
    let selected = model
        .selected_row()
        .map(|_| model.selected.saturating_sub(visible.start));
    let mut state = ListState::default().with_selected(selected);
    frame.render_stateful_widget(list, area, &mut state);
}

/// Lines a row takes: a volume that is not mounted adds its reason.
fn row_height(model: &Model, row: &Row) -> usize {
    match row {
        Row::Volume { volume } => match model.snapshot.volumes.get(*volume).map(|v| &v.mount) {
            Some(MountState::Mounted { .. }) | None => 1,
            Some(_) => 2,
        },
        _ => 1,
    }
}

/// The rows to draw in `height` lines: from the top when the selection
/// fits there, else ending at the selection.
fn visible_rows(model: &Model, height: usize) -> std::ops::Range<usize> {
    let len = model.rows.len();
    let selected = model.selected.min(len.saturating_sub(1));
    let h = |i: usize| model.rows.get(i).map_or(1, |r| row_height(model, r));
    let through_selected: usize = (0..=selected).map(h).sum();
    let mut start = 0;
    if through_selected > height {
        start = selected;
        let mut used = h(selected);
        while start > 0 && used + h(start - 1) <= height {
            start -= 1;
            used += h(start);
        }
    }
    let mut end = start;
    let mut used = 0;
    while end < len && used < height {
        used += h(end);
        end += 1;
    }
    start..end
}

fn row_line<'a>(model: &'a Model, row: &Row, theme: &Theme) -> Text<'a> {
    let snap = &model.snapshot;
    match row {
        Row::Volume { volume } => match snap.volumes.get(*volume) {
            Some(v) => volume_text(v, theme),
            None => Text::raw(""),
        },
        Row::Image {
            volume,
            image,
            blocker,
            ..
        } => match snap.volumes.get(*volume).and_then(|v| v.images.get(*image)) {
            Some(i) => Text::from(image_line(i, blocker.as_ref(), theme)),
            None => Text::raw(""),
        },
        Row::Entry {
            entry,
            nested,
            blocker,
        } => {
            let is_default = model.default == Some(*entry);
            match (snap.image(*entry), snap.entry(*entry)) {
                (Some(_), Some(e)) if *nested => Text::from(entry_line(e, is_default, theme)),
                (Some(i), Some(e)) => {
                    Text::from(single_entry_line(i, e, blocker.as_ref(), is_default, theme))
                }
                _ => Text::raw(""),
            }
        }
    }
}

/// The indent of a row, with the default marker in its last two columns.
fn indent(depth: usize, is_default: bool) -> String {
    let spaces = "  ".repeat(depth.saturating_sub(1));
    if is_default {
        format!("{spaces}* ")
    } else {
        format!("{spaces}  ")
    }
}

fn volume_text<'a>(v: &'a Volume, theme: &Theme) -> Text<'a> {
    let mut spans = vec![
        Span::styled(v.display_name(), theme.header()),
        Span::styled(
            format!(" {} {}", fs_name(v), human_size(v.size)),
            theme.dim(),
        ),
    ];
    for badge in &v.badges {
        // Removable is a fact, not a warning.
        let style = match badge {
            VolumeBadge::Removable => theme.dim(),
            _ => theme.warn(),
        };
        spans.push(Span::styled(format!(" [{}]", badge_text(*badge)), style));
    }
    let mut text = Text::from(Line::from(spans));
    // The reason gets a line of its own: a header cannot be selected, so
    // the details pane never shows it.
    match &v.mount {
        MountState::Mounted { .. } => {}
        MountState::Refused { reason } => text.push_line(Line::styled(
            format!("  not mounted: {reason}"),
            theme.bad(),
        )),
        MountState::NotMounted => text.push_line(Line::styled("  not mounted", theme.bad())),
    }
    text
}

pub fn fs_name(v: &Volume) -> String {
    match &v.fstype {
        crate::model::FsType::Ntfs => "NTFS".into(),
        crate::model::FsType::Exfat => "exFAT".into(),
        crate::model::FsType::Other(s) => s.clone(),
    }
}

pub fn badge_text(b: VolumeBadge) -> &'static str {
    b.label()
}

/// Why the row cannot boot, in the judge's few words.
fn blocker_status(why: &PlanError, theme: &Theme) -> Span<'static> {
    Span::styled(why.summary(), theme.bad())
}

fn image_size(i: &Image) -> String {
    human_size(i.kind.data_size().unwrap_or(i.file_size))
}

fn image_line<'a>(i: &'a Image, blocker: Option<&PlanError>, theme: &Theme) -> Line<'a> {
    let mut spans = vec![
        Span::raw(indent(1, false)),
        Span::raw(i.name()),
        Span::styled(format!(" {}", image_size(i)), theme.dim()),
    ];
    if let Some(t) = i.trial {
        spans.push(Span::styled(
            format!(" {}", crate::trial::badge(t)),
            theme.warn(),
        ));
    }
    if let Some(why) = blocker {
        spans.push(Span::raw(" "));
        spans.push(blocker_status(why, theme));
    }
    Line::from(spans)
}

fn entry_line<'a>(e: &'a BootEntry, is_default: bool, theme: &Theme) -> Line<'a> {
    let mut spans = vec![
        Span::raw(indent(2, is_default)),
        Span::raw(e.title.as_str()),
    ];
    if let Some(v) = &e.version {
        spans.push(Span::styled(format!(" {v}"), theme.dim()));
    }
    Line::from(spans)
}

fn single_entry_line<'a>(
    i: &'a Image,
    e: &'a BootEntry,
    blocker: Option<&PlanError>,
    is_default: bool,
    theme: &Theme,
) -> Line<'a> {
    let mut spans = vec![Span::raw(indent(1, is_default))];
    match blocker {
        None => {
            spans.push(Span::raw(e.title.as_str()));
            spans.push(Span::styled(format!(" {}", i.name()), theme.dim()));
            if let Some(t) = i.trial {
                spans.push(Span::styled(
                    format!(" {}", crate::trial::badge(t)),
                    theme.warn(),
                ));
            }
        }
        Some(why) => {
            spans.push(Span::raw(i.name()));
            spans.push(Span::raw(" "));
            spans.push(blocker_status(why, theme));
        }
    }
    Line::from(spans)
}
