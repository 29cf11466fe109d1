import Foundation

/// Waits until `condition` holds, checking every `interval` for at most `timeout` seconds of
/// wall time, and always checks once more after that. Under the full suite's load a test task
/// can go unscheduled for longer than its timeout (the cooperative pool has two threads here,
/// and tests that block hold them): a deadline alone would then judge a state it never looked at
/// (seen: a restarted service's API "refused" for 90 s from one attempt made before it listened).
func eventually(timeout: Double, interval: Duration = .milliseconds(200), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// `eventually` for tests that block their thread (most end-to-end tests): waits until
/// `condition` holds, checking every `interval` s for at most `timeout` s; false if it never did.
/// Conditions that start a process (kcat, `inspect state`) take CPU from the service under test
/// on a 2-core machine: they check every quarter second.
@discardableResult
func waitUntil(timeout: Double, interval: Double = 0.25, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    }
    return try condition()
}
