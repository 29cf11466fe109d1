/// Who may use the HTTP API. With `http.auth_token` set, `/api/*` and every POST need
/// `Authorization: Bearer <token>`; `/healthz`, `/readyz` (probes) and `/metrics` (unless
/// `protect_metrics`) stay open, and so does the dashboard's page itself, which holds no data
/// and asks for the token. The token is compared in constant time and never logged or served.
public struct HTTPAccess: Sendable {
    public var token: String?
    /// Listening beyond loopback without a token, on purpose.
    public var allowUnauthenticated = false
    public var protectMetrics = false
    /// Per-user data (`/api/users/…`): off answers 404.
    public var userAPI = true

    public init() {}

    /// Why the service must not listen on `host` as configured, or nil.
    public func refusal(host: String) -> String? {
        guard token == nil, !allowUnauthenticated, !["127.0.0.1", "::1", "localhost"].contains(host) else { return nil }
        return "the HTTP API would listen on \(host) without authentication: set http.auth_token: ${SEGMENTER_API_TOKEN} "
            + "(or http.allow_unauthenticated: true to do it on purpose)"
    }
}
