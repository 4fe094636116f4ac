//! Enums whose variants are label values (metric labels, record strings):
//! written once, each with its label, they get `ALL` (declaration order),
//! `as_str` and `index` (the position in `ALL`).

/// `label_enum! { #[derive(..)] pub enum Name { Variant = "label", .. } }`
macro_rules! label_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }

            /// The position in `ALL`.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

pub(crate) use label_enum;

#[cfg(test)]
mod tests {
    label_enum! {
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Colour { Red = "red", DarkBlue = "dark_blue" }
    }

    #[test]
    fn all_labels_and_indexes_follow_the_declaration() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::DarkBlue]);
        assert_eq!(Colour::ALL.map(Colour::as_str), ["red", "dark_blue"]);
        assert_eq!(Colour::DarkBlue.index(), 1);
    }
}
