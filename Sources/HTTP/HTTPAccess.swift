import Foundation
import Hummingbird
import ServiceConfig

/// How the HTTP module judges a request against the configured access.
extension HTTPAccess {
    /// Whether `path` reaches per-user data (`/api/users/…`, `/api/export/…`), judged on the path
    /// as the router matches it: empty and `.` segments dropped, each percent-decoded (and split
    /// again on a decoded `/`), case ignored — so `//api/users/x`, `/api//users/x`,
    /// `/./api/users/x` and `/api%2Fusers/x` are what they look like (issue 25: they were let
    /// through while the router answered them).
    static func readsUserData(_ path: String) -> Bool {
        let segments = path.split(separator: "/")
            .flatMap { ($0.removingPercentEncoding ?? String($0)).split(separator: "/") }
            .filter { $0 != "." }
            .map { $0.lowercased() }
        return segments.count >= 2 && segments[0] == "api" && (segments[1] == "users" || segments[1] == "export")
    }

    /// Whether `path` (with `method`) needs the token.
    func isProtected(path: String, method: HTTPRequest.Method) -> Bool {
        if method == .post { return true }
        switch path {
        case "/", "/healthz", "/readyz": return false
        case "/metrics": return protectMetrics
        default: return true
        }
    }

    /// The presented `Authorization` header carries the token (constant time in its length).
    /// The scheme's name is case-insensitive (RFC 7235 §2.1).
    func accepts(_ header: String?) -> Bool {
        guard let token, let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let presented = Array(header.dropFirst("Bearer ".count).utf8), expected = Array(token.utf8)
        var difference = presented.count ^ expected.count
        for index in 0..<max(presented.count, expected.count) {
            difference |= Int((index < presented.count ? presented[index] : 0) ^ (index < expected.count ? expected[index] : 0))
        }
        return difference == 0
    }
}

/// Answers 401 (with a `WWW-Authenticate` challenge) to a protected request without the token,
/// and 404 to per-user data when it is switched off; and puts the browser-hardening headers on every answer, `no-store` on
/// per-user ones.
struct HTTPAccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: HTTPAccess

    /// The page runs its own inline script and style and loads nothing from elsewhere; no site may frame it.
    static var contentSecurityPolicy: String {
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        + "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let userData = HTTPAccess.readsUserData(path)
        var response: Response
        if !access.userAPI && userData {
            response = try HTTPAPI.json(HTTPAPI.error("per-user data is switched off (http.user_api: false)"), status: .notFound)
        } else if access.token != nil && access.isProtected(path: path, method: request.method) && !access.accepts(request.headers[.authorization]) {
            response = try HTTPAPI.json(HTTPAPI.error("this needs Authorization: Bearer <http.auth_token>"), status: .unauthorized)
            response.headers[.wwwAuthenticate] = "Bearer realm=\"segmenter\""
        } else {
            response = try await next(request, context)
        }
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.init("X-Frame-Options")!] = "DENY"
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.init("Referrer-Policy")!] = "no-referrer"
        if userData { response.headers[.cacheControl] = "no-store" }
        return response
    }
}
