//! Plain-text tables for list commands: columns as wide as their widest cell.

pub fn print_table(headings: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headings.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headings.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
