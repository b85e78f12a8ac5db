//! The load tester's own verdicts, earned against real servers on port 0:
//! the coordinator (must PASS) and a deliberately faulty server (must FAIL,
//! with every planted loss counted), and two coordinator instances on one
//! PostgreSQL database.

mod against_coordinator;
mod against_faulty_server;
mod crash;
mod faulty_server;
mod helpers;
mod two_instances;
