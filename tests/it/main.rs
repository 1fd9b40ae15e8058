//! The integration tests, one binary (`it`): each module is one area of claunch run end to
//! end against the real Docker engine, sharing what is in `support`.

mod support;

mod bad_input;
mod cluster;
mod compose;
mod creds;
mod doctor;
mod e2e_login_modes;
mod e2e_real_cli;
mod e2e_refresh;
mod e2e_run;
mod exec;
mod faults;
mod fuzz;
mod hostile_collect;
mod hostile_prompts;
mod json;
mod lifecycle;
mod metrics;
mod newcomer;
mod remote;
mod run;
mod secrets;
mod sources;
mod up;
