//! Driving SIPp from tests (owned by the SIPp tests).
#![allow(dead_code)]
