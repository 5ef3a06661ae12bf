//! Glyphs and styles, in one place so that ASCII mode is one switch.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::widgets::{Block, BorderType, Borders};

/// Borders drawn with `+-|`, for consoles whose font has no box drawing.
const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub ascii: bool,
}

impl Theme {
    pub fn new(ascii: bool) -> Theme {
        Theme { ascii }
    }

    pub fn block<'a>(&self, title: &'a str) -> Block<'a> {
        let b = Block::default()
            .borders(Borders::ALL)
            .title(title)
            .border_style(Style::default().fg(Color::Gray));
        if self.ascii {
            b.border_set(ASCII_BORDER)
        } else {
            b.border_type(BorderType::Plain)
        }
    }

    /// The marker in front of the selected row. "►" is in the VGA font
    /// (code page 437), unlike most arrows.
    pub fn selection_marker(&self) -> &'static str {
        if self.ascii { "> " } else { "► " }
    }

    pub fn up_down(&self) -> &'static str {
        if self.ascii { "Up/Dn" } else { "↑↓" }
    }

    pub fn bullet(&self) -> &'static str {
        if self.ascii { "-" } else { "•" }
    }

    pub fn label(&self) -> Style {
        Style::default().fg(Color::Cyan)
    }

    pub fn header(&self) -> Style {
        Style::default()
            .fg(Color::White)
            .add_modifier(Modifier::BOLD)
    }

    pub fn good(&self) -> Style {
        Style::default().fg(Color::Green)
    }

    pub fn warn(&self) -> Style {
        Style::default().fg(Color::Yellow)
    }

    pub fn bad(&self) -> Style {
        Style::default().fg(Color::Red)
    }

    pub fn dim(&self) -> Style {
        Style::default().fg(Color::DarkGray)
    }

    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub fn title_bar(&self) -> Style {
        Style::default().fg(Color::White).bg(Color::Blue)
    }

    pub fn key(&self) -> Style {
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    }
}
