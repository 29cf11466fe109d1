import Foundation
import Testing
import Yams
@testable import ServiceConfig

/// `deploy/kubernetes/` (issue 26, item 6) agrees with the configuration it mounts: the config
/// loads with what the pod's environment provides, and the ports, probes, volume, identity and
/// token the StatefulSet and Service declare are the ones that config uses.
@Suite struct KubernetesManifestTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy/kubernetes")

    static func manifest(_ name: String) throws -> [String: Any] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any], "\(name) is one YAML mapping")
    }

    @Test func theStatefulSetServesTheConfigItMounts() throws {
        let configMap = try Self.manifest("configmap.yaml")
        let statefulSet = try Self.manifest("statefulset.yaml")
        let service = try Self.manifest("service.yaml")
        #expect(configMap["kind"] as? String == "ConfigMap" && statefulSet["kind"] as? String == "StatefulSet" && service["kind"] as? String == "Service")

        let spec = try #require(statefulSet["spec"] as? [String: Any])
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        let env = Dictionary(uniqueKeysWithValues: (container["env"] as? [[String: Any]] ?? []).map { ($0["name"] as! String, $0["valueFrom"] as? [String: Any]) })
        // The pod's name and the token come from Kubernetes, not from the image or the ConfigMap
        #expect((env["POD_NAME"]??["fieldRef"] as? [String: String])?["fieldPath"] == "metadata.name")
        let secretRef = try #require(env["SEGMENTER_API_TOKEN"]??["secretKeyRef"] as? [String: String], "the token comes from a Secret")
        #expect(secretRef["name"] == "segmenter-secrets" && secretRef["key"] == "api-token")

        // The config the container is pointed at is the ConfigMap's key, mounted where it reads it
        let args = try #require(container["args"] as? [String])
        let configPath = try #require(args.firstIndex(of: "--config").map { args[$0 + 1] })
        let mounts = Dictionary(uniqueKeysWithValues: (container["volumeMounts"] as? [[String: Any]] ?? []).map { ($0["name"] as! String, $0["mountPath"] as! String) })
        let configVolume = try #require((pod["volumes"] as? [[String: Any]])?.first { ($0["configMap"] as? [String: Any])?["name"] as? String == (configMap["metadata"] as? [String: Any])?["name"] as? String })
        let configMount = try #require(mounts[configVolume["name"] as! String])
        let key = URL(fileURLWithPath: configPath).lastPathComponent
        #expect(URL(fileURLWithPath: configPath).deletingLastPathComponent().path == configMount)
        let yaml = try #require((configMap["data"] as? [String: String])?[key], "the ConfigMap has \(key)")

        // which loads with the pod's environment, as pod segmenter-1 would
        let config = try SegmenterConfig.parse(yaml: yaml, source: configPath, environment: ["POD_NAME": "segmenter-1", "SEGMENTER_API_TOKEN": String(repeating: "t", count: 32)])
        #expect(config.kafka["group.instance.id"] == "segmenter-1", "static membership under the pod's name")
        #expect(config.httpAdvertisedURL == "http://segmenter-1.\((service["metadata"] as? [String: Any])?["name"] as? String ?? "?"):\(config.httpPort ?? 0)")
        #expect(config.httpHost == "0.0.0.0", "the kubelet probes the pod's address")
        #expect(config.httpAccess.token != nil)

        // The state directory is the volume claimed per pod
        let claims = (spec["volumeClaimTemplates"] as? [[String: Any]] ?? []).compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
        let stateMount = try #require(claims.first.flatMap { mounts[$0] }, "a volume claim mounted in the container")
        #expect(config.stateDirectory.path == stateMount)

        // The port, probes and Service all point at the port the API listens on
        let ports = try #require(container["ports"] as? [[String: Any]])
        let http = try #require(ports.first { $0["name"] as? String == "http" })
        #expect(http["containerPort"] as? Int == config.httpPort)
        let readiness = try #require((container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])
        let liveness = try #require((container["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])
        #expect(readiness["path"] as? String == "/readyz" && readiness["port"] as? String == "http")
        #expect(liveness["path"] as? String == "/healthz" && liveness["port"] as? String == "http")
        let servicePort = try #require(((service["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first)
        #expect(servicePort["targetPort"] as? String == "http" && servicePort["port"] as? Int == config.httpPort)
        #expect(spec["serviceName"] as? String == (service["metadata"] as? [String: Any])?["name"] as? String)
        let selector = (spec["selector"] as? [String: Any])?["matchLabels"] as? [String: String]
        #expect((service["spec"] as? [String: Any])?["selector"] as? [String: String] == selector)

        // A graceful stop has longer than a batch and the group's session timeout to finish
        let grace = try #require(pod["terminationGracePeriodSeconds"] as? Int)
        let session = Int(config.kafka["session.timeout.ms"] ?? "45000")! / 1000
        #expect(grace >= 30 && grace >= session, "grace \(grace) s, session \(session) s")
        #expect((pod["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
    }
}
