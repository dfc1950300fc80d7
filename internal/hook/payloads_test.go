package hook

// Realistic notification bodies, shaped after each vendor's documented
// schema. Digests are sha256 of single letters so they are well formed.
const (
	digestA = "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
	digestB = "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
	digestC = "sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"
	digestD = "sha256:18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"
	digestE = "sha256:3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea"
	digestF = "sha256:252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"
	digestG = "sha256:cd0aa9856147b6c5b4ff2b7dfee5da20aa38253099ef1b4a64aced233c9afe29"
)

// distributionBody: a tagged manifest push, a layer (blob) push, a pull, an
// OCI index pushed by digest (no request.host, registry from target.url), a
// delete and a cross-repository mount.
const distributionBody = `{
  "events": [
    {
      "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
      "timestamp": "2024-05-02T14:00:05.123456789Z",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 7143,
        "digest": "` + digestA + `",
        "length": 7143,
        "repository": "library/debian",
        "url": "https://registry.example.com:5000/v2/library/debian/manifests/` + digestA + `",
        "tag": "bookworm"
      },
      "request": {
        "id": "6df24a34-0959-4923-81ca-14f09767db19",
        "addr": "10.0.0.5:51234",
        "host": "registry.example.com:5000",
        "method": "PUT",
        "useragent": "docker/26.1.0 go/go1.21.9 git-commit/c8af8eb kernel/6.5.0 os/linux arch/amd64"
      },
      "actor": {"name": "ci"},
      "source": {"addr": "registry-0:5000", "instanceID": "9a7b8f47-2b3e-4c55-a8b4-3b2c1e0d9f6a"}
    },
    {
      "id": "b7c3e1a2-6f54-4d0e-9c1b-2a3d4e5f6a7b",
      "timestamp": "2024-05-02T14:00:04.000000001Z",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "size": 29126484,
        "digest": "` + digestB + `",
        "length": 29126484,
        "repository": "library/debian",
        "url": "https://registry.example.com:5000/v2/library/debian/blobs/` + digestB + `"
      },
      "request": {"id": "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "addr": "10.0.0.5:51234", "host": "registry.example.com:5000", "method": "PUT", "useragent": "docker/26.1.0"},
      "actor": {"name": "ci"},
      "source": {"addr": "registry-0:5000", "instanceID": "9a7b8f47-2b3e-4c55-a8b4-3b2c1e0d9f6a"}
    },
    {
      "id": "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
      "timestamp": "2024-05-02T14:01:00Z",
      "action": "pull",
      "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 7143,
        "digest": "` + digestA + `",
        "length": 7143,
        "repository": "library/debian",
        "url": "https://registry.example.com:5000/v2/library/debian/manifests/bookworm",
        "tag": "bookworm"
      },
      "request": {"id": "aa", "addr": "10.0.0.9:40000", "host": "registry.example.com:5000", "method": "GET", "useragent": "containerd/1.7"},
      "actor": {},
      "source": {"addr": "registry-0:5000", "instanceID": "9a7b8f47-2b3e-4c55-a8b4-3b2c1e0d9f6a"}
    },
    {
      "id": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
      "timestamp": "2024-05-02T16:00:07+02:00",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "size": 1609,
        "digest": "` + digestC + `",
        "length": 1609,
        "repository": "acme/base",
        "url": "https://registry.example.com:5000/v2/acme/base/manifests/` + digestC + `"
      },
      "request": {"id": "bb", "addr": "10.0.0.6:51000", "method": "PUT", "useragent": "buildkit/v0.13"},
      "actor": {"name": "buildbot"},
      "source": {"addr": "registry-1:5000", "instanceID": "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"}
    },
    {
      "id": "d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f5a",
      "timestamp": "2024-05-02T14:05:00Z",
      "action": "delete",
      "target": {"digest": "` + digestD + `", "repository": "acme/base"},
      "request": {"id": "cc", "addr": "10.0.0.7:50000", "host": "registry.example.com:5000", "method": "DELETE", "useragent": "curl/8.5.0"},
      "actor": {"name": "admin"},
      "source": {"addr": "registry-0:5000", "instanceID": "9a7b8f47-2b3e-4c55-a8b4-3b2c1e0d9f6a"}
    },
    {
      "id": "e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b",
      "timestamp": "2024-05-02T14:06:00Z",
      "action": "mount",
      "target": {
        "mediaType": "application/octet-stream",
        "size": 29126484,
        "digest": "` + digestB + `",
        "length": 29126484,
        "repository": "acme/base",
        "fromRepository": "library/debian",
        "url": "https://registry.example.com:5000/v2/acme/base/blobs/` + digestB + `"
      },
      "request": {"id": "dd", "addr": "10.0.0.6:51000", "host": "registry.example.com:5000", "method": "POST", "useragent": "buildkit/v0.13"},
      "actor": {"name": "buildbot"},
      "source": {"addr": "registry-1:5000", "instanceID": "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"}
    }
  ]
}`

// harborPushBody is Harbor's "Default" payload for PUSH_ARTIFACT.
const harborPushBody = `{
  "type": "PUSH_ARTIFACT",
  "occur_at": 1714658405,
  "operator": "robot$acme+ci",
  "event_data": {
    "resources": [
      {
        "digest": "` + digestD + `",
        "tag": "v1.4.2",
        "resource_url": "harbor.example.com/acme/base:v1.4.2"
      }
    ],
    "repository": {
      "date_created": 1700000000,
      "name": "base",
      "namespace": "acme",
      "repo_full_name": "acme/base",
      "repo_type": "private"
    }
  }
}`

// harborPullBody and harborDeleteBody are event types to ignore.
const harborPullBody = `{
  "type": "PULL_ARTIFACT",
  "occur_at": 1714658500,
  "operator": "admin",
  "event_data": {
    "resources": [{"digest": "` + digestD + `", "tag": "v1.4.2", "resource_url": "harbor.example.com/acme/base:v1.4.2"}],
    "repository": {"date_created": 1700000000, "name": "base", "namespace": "acme", "repo_full_name": "acme/base", "repo_type": "private"}
  }
}`

const harborDeleteBody = `{
  "type": "DELETE_ARTIFACT",
  "occur_at": 1714658600,
  "operator": "admin",
  "event_data": {
    "resources": [{"digest": "` + digestD + `", "tag": "v1.4.2", "resource_url": "harbor.example.com/acme/base:v1.4.2"}],
    "repository": {"date_created": 1700000000, "name": "base", "namespace": "acme", "repo_full_name": "acme/base", "repo_type": "private"}
  }
}`

const harborScanBody = `{
  "type": "SCANNING_COMPLETED",
  "occur_at": 1714658700,
  "operator": "auto",
  "event_data": {
    "resources": [{"digest": "` + digestD + `", "tag": "v1.4.2", "resource_url": "harbor.example.com/acme/base:v1.4.2", "scan_overview": {}}],
    "repository": {"name": "base", "namespace": "acme", "repo_full_name": "acme/base", "repo_type": "private"}
  }
}`

// harborCloudEventBody is Harbor's CloudEvents payload format, here with two
// tags of one artifact in one notification.
const harborCloudEventBody = `{
  "specversion": "1.0",
  "requestid": "7f1e5d0c-2b8a-4c63-9e41-0d2f3a4b5c6d",
  "id": "4b0f7a6e-7d1e-4a2f-8c3b-9e0d1c2b3a4f",
  "source": "/projects/2/webhook/policies/7",
  "type": "harbor.artifact.pushed",
  "datacontenttype": "application/json",
  "time": "2024-05-02T14:10:00Z",
  "data": {
    "resources": [
      {"digest": "` + digestG + `", "tag": "3.20", "resource_url": "harbor.example.com:8443/library/alpine:3.20"},
      {"digest": "` + digestG + `", "tag": "latest", "resource_url": "harbor.example.com:8443/library/alpine:latest"}
    ],
    "repository": {"date_created": 1700000000, "name": "alpine", "namespace": "library", "repo_full_name": "library/alpine", "repo_type": "public"}
  },
  "operator": "admin"
}`

// dockerHubBody follows Docker Hub's webhook example, including its
// float-formatted Unix times.
const dockerHubBody = `{
  "callback_url": "https://registry.hub.docker.com/u/acme/app/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
  "push_data": {
    "pushed_at": 1.714658405e+09,
    "pusher": "acmebot",
    "tag": "latest"
  },
  "repository": {
    "comment_count": 0,
    "date_created": 1.417494799e+09,
    "description": "",
    "dockerfile": "FROM debian:bookworm\n",
    "full_description": "",
    "is_official": false,
    "is_private": true,
    "is_trusted": false,
    "name": "app",
    "namespace": "acme",
    "owner": "acme",
    "repo_name": "acme/app",
    "repo_url": "https://registry.hub.docker.com/u/acme/app/",
    "star_count": 0,
    "status": "Active"
  }
}`

// acrEventGridBody is an Event Grid schema batch: a tagged push, an image
// delete, a Helm chart push (ignored) and a push by digest.
const acrEventGridBody = `[
  {
    "id": "831e1650-001e-001b-66ab-eeb76e069631",
    "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
    "subject": "base:v2",
    "eventType": "Microsoft.ContainerRegistry.ImagePushed",
    "eventTime": "2024-05-02T14:20:05.6549614Z",
    "data": {
      "id": "31c51664-e5bd-416a-a5df-e5206bc47ed0",
      "timestamp": "2024-05-02T14:20:05.276585742Z",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 3023,
        "digest": "` + digestE + `",
        "length": 3023,
        "repository": "base",
        "tag": "v2"
      },
      "request": {
        "id": "7c66f28b-de19-40a4-821c-6f5f6c0003a4",
        "host": "acmeacr.azurecr.io",
        "method": "PUT",
        "useragent": "docker/26.1.0 go/go1.21.9"
      }
    },
    "dataVersion": "1.0",
    "metadataVersion": "1"
  },
  {
    "id": "f06e3921-301f-42ec-b368-212f7d5354bd",
    "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
    "subject": "base",
    "eventType": "Microsoft.ContainerRegistry.ImageDeleted",
    "eventTime": "2024-05-02T14:21:00Z",
    "data": {
      "id": "6d8ae2e7-8f8f-4b50-9d5c-9c3e7f0d2a11",
      "timestamp": "2024-05-02T14:21:00Z",
      "action": "delete",
      "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "` + digestA + `", "repository": "base"},
      "request": {"id": "ee", "host": "acmeacr.azurecr.io", "method": "DELETE", "useragent": "azure-cli"}
    },
    "dataVersion": "1.0",
    "metadataVersion": "1"
  },
  {
    "id": "ea3a9c28-5b31-4e52-9f0f-7a6a3d4b2c1e",
    "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
    "subject": "charts/web:1.2.0",
    "eventType": "Microsoft.ContainerRegistry.ChartPushed",
    "eventTime": "2024-05-02T14:22:00Z",
    "data": {
      "id": "ff", "timestamp": "2024-05-02T14:22:00Z", "action": "chart_push",
      "target": {"mediaType": "application/vnd.acr.helm.chart", "size": 3000, "digest": "` + digestB + `", "repository": "charts/web", "tag": "web-1.2.0.tgz", "name": "web", "version": "1.2.0"}
    },
    "dataVersion": "1.0",
    "metadataVersion": "1"
  },
  {
    "id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
    "subject": "tools/builder@` + digestF + `",
    "eventType": "Microsoft.ContainerRegistry.ImagePushed",
    "eventTime": "2024-05-02T14:23:00Z",
    "data": {
      "id": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
      "timestamp": "2024-05-02T14:23:00.5Z",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 1024,
        "digest": "` + digestF + `",
        "length": 1024,
        "repository": "tools/builder"
      },
      "request": {"id": "gg", "host": "acmeacr.azurecr.io", "method": "PUT", "useragent": "oras/1.1"}
    },
    "dataVersion": "1.0",
    "metadataVersion": "1"
  }
]`

// acrCloudEventBody is a single CloudEvents 1.0 structured-mode event.
const acrCloudEventBody = `{
  "specversion": "1.0",
  "type": "Microsoft.ContainerRegistry.ImagePushed",
  "source": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
  "subject": "base:v3",
  "id": "9d1b4a3c-2e5f-4c6d-8a7b-0c1d2e3f4a5b",
  "time": "2024-05-02T14:30:00.1234567Z",
  "data": {
    "id": "3c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f",
    "timestamp": "2024-05-02T14:30:00.0123456Z",
    "action": "push",
    "target": {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "size": 2011,
      "digest": "` + digestC + `",
      "length": 2011,
      "repository": "base",
      "tag": "v3"
    },
    "request": {"id": "hh", "host": "acmeacr.azurecr.io", "method": "PUT", "useragent": "buildkit/v0.13"}
  }
}`

// acrCloudEventBatchBody is a CloudEvents batch with an ignored delete.
const acrCloudEventBatchBody = `[
  {
    "specversion": "1.0",
    "type": "Microsoft.ContainerRegistry.ImageDeleted",
    "source": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
    "subject": "base",
    "id": "aa1b4a3c-2e5f-4c6d-8a7b-0c1d2e3f4a5b",
    "time": "2024-05-02T14:31:00Z",
    "data": {"id": "x1", "timestamp": "2024-05-02T14:31:00Z", "action": "delete", "target": {"digest": "` + digestA + `", "repository": "base"}, "request": {"host": "acmeacr.azurecr.io"}}
  },
  {
    "specversion": "1.0",
    "type": "Microsoft.ContainerRegistry.ImagePushed",
    "source": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
    "subject": "base:v4",
    "id": "bb1b4a3c-2e5f-4c6d-8a7b-0c1d2e3f4a5b",
    "time": "2024-05-02T14:32:00Z",
    "data": {
      "id": "x2",
      "action": "push",
      "target": {"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "size": 900, "digest": "` + digestD + `", "length": 900, "repository": "base", "tag": "v4"},
      "request": {"id": "ii", "host": "acmeacr.azurecr.io", "method": "PUT", "useragent": "docker/26.1.0"}
    }
  }
]`

// eventGridValidationBody is Event Grid's subscription validation event.
const eventGridValidationBody = `[
  {
    "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
    "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acmeacr",
    "subject": "",
    "data": {
      "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
      "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/refit/validate?id=512d38b6-c7b8-40c8-89fe-f46f9e9622b6&t=2024-05-02T14:00:00.000Z"
    },
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "eventTime": "2024-05-02T14:00:00.000Z",
    "metadataVersion": "1",
    "dataVersion": "1"
  }
]`
