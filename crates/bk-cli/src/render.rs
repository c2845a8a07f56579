//! Small formatting helpers shared by the commands.

use bk_core::tree::{Node, NodeKind};

/// Up to ten names, then how many more.
pub fn first_few(names: &[String]) -> String {
    const N: usize = 10;
    let mut s = names[..names.len().min(N)].join(", ");
    if names.len() > N {
        s.push_str(&format!(" and {} more", names.len() - N));
    }
    s
}

/// `drwxr-xr-x` style.
pub fn mode_string(n: &Node) -> String {
    let k = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::File => '-',
    };
    let mut s = String::from(k);
    for shift in [6, 3, 0] {
        let b = (n.mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Bytes in binary units: `512 B`, `1.5 MiB`.
pub fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
