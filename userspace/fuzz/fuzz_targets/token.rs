//! Connect tokens (`tickgate::session::token`) on arbitrary bytes: reading a token as a client
//! does and opening its sealed part as tickgate does never panic, and a token that opens says
//! what the layout says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate::{session::token, wire::crypto::Key};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes([7; 32]);
    // As given, and padded or cut to a token's size so that most inputs reach the parser's body.
    let mut sized = data.to_vec();
    sized.resize(token::CONNECT_TOKEN_LEN, 0);
    sized[..16].copy_from_slice(&token::VERSION_INFO);
    for bytes in [data, sized.as_slice()] {
        if let Ok(public) = token::parse(bytes) {
            assert!(!public.addresses.is_empty() && public.addresses.len() <= token::MAX_ADDRESSES);
            if let Ok(private) = public.sealed.open(&key) {
                // Forging a seal under an unknown key is not something a fuzzer finds; if it
                // opens, its fields are in range.
                assert!(private.user_data.len() <= token::MAX_USER_DATA);
            }
        }
    }
});
