/// Where the BigQuery project is and how to authenticate. Neither the key nor a token is ever
/// logged; the label names only the project.
public struct BigQuerySettings: Sendable {
    public enum Auth: Sendable {
        /// A service-account key file (JSON, as the Cloud console downloads it): a JWT signed
        /// with its RS256 key is exchanged at the key's `token_uri` for an access token,
        /// renewed before it expires.
        case serviceAccountKey(path: String)
        /// An OAuth access token from the environment (`access_token: ${BIGQUERY_TOKEN}`).
        case accessToken(String)
        /// No credentials: only for an emulator at `endpoint`.
        case none
    }

    public static let googleEndpoint = "https://bigquery.googleapis.com"

    public var project: String
    /// Unqualified table names in the user's SQL resolve here.
    public var dataset: String?
    /// Where the jobs run (`US`, `EU`, `europe-west1`, …); BigQuery's default when nil.
    public var location: String?
    /// The REST root; an emulator's for tests.
    public var endpoint = googleEndpoint
    public var auth = Auth.none
    /// A job that has not finished by then fails the run (and is retried by the scheduler).
    public var queryTimeoutSeconds: Int64 = 600
    /// Rows per page of results (`maxResults`).
    public var pageSize = 10_000

    public init(project: String) { self.project = project }
}
