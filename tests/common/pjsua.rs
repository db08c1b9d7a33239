//! Driving pjsua2 phones (tests/peers/pjphone.py) from tests.
#![allow(dead_code)]
