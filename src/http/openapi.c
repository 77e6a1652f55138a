/* /openapi.json: OpenAPI 3.1, generated from the route table (routes.def) joined with the schema
 * table (openapi.def) and the components below, so the document cannot drift from what is served. */
#include <string.h>

#include "http.h"

/* Component schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses). Shapes follow API.md and
 * docs/CONTRACT-NOTES.md; "additionalProperties" stays open where AEP objects carry more fields. */
static const char components_json[] =
    "{"
    "\"Problem\":{\"type\":\"object\",\"required\":[\"type\",\"title\",\"status\"],\"properties\":{"
    "\"type\":{\"type\":\"string\"},\"title\":{\"type\":\"string\"},\"status\":{\"type\":\"integer\"},"
    "\"detail\":{\"type\":\"string\"},\"errors\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/ErrorItem\"}}}},"
    "\"ErrorItem\":{\"type\":\"object\",\"required\":[\"path\",\"message\"],\"properties\":{\"path\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"}}},"
    "\"Status\":{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"},\"applyQueue\":{\"type\":\"integer\"}}},"
    "\"MetricsText\":{\"type\":\"string\",\"description\":\"Prometheus text exposition format\"},"
    "\"OpenApiDocument\":{\"type\":\"object\",\"required\":[\"openapi\",\"paths\"]},"
    "\"AnyObject\":{\"type\":\"object\"},"
    "\"Sandbox\":{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},\"title\":{\"type\":\"string\"},"
    "\"type\":{\"enum\":[\"development\",\"production\"]},\"state\":{\"type\":\"string\"},\"isDefault\":{\"type\":\"boolean\"},\"createdDate\":{\"type\":\"string\"}}},"
    "\"SandboxCreate\":{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9-]{0,63}$\"},"
    "\"title\":{\"type\":\"string\",\"maxLength\":256},\"type\":{\"enum\":[\"development\",\"production\"]}}},"
    "\"SandboxList\":{\"type\":\"object\",\"properties\":{\"sandboxes\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Sandbox\"}},\"_page\":{\"type\":\"object\"}}},"
    "\"Key\":{\"type\":\"object\",\"required\":[\"id\",\"name\",\"role\"],\"properties\":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
    "\"role\":{\"enum\":[\"admin\",\"editor\",\"viewer\",\"ingest\"]},\"sandboxes\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"createdAt\":{\"type\":\"integer\"}}},"
    "\"KeyCreate\":{\"type\":\"object\",\"required\":[\"name\",\"role\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"role\":{\"enum\":[\"admin\",\"editor\",\"viewer\",\"ingest\"]},\"sandboxes\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}},"
    "\"KeyCreated\":{\"allOf\":[{\"$ref\":\"#/components/schemas/Key\"},{\"type\":\"object\",\"required\":[\"key\"],\"properties\":{\"key\":{\"type\":\"string\",\"description\":\"the secret, shown once\"}}}]},"
    "\"KeyList\":{\"type\":\"object\",\"properties\":{\"keys\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Key\"}}}},"
    "\"Namespace\":{\"type\":\"object\",\"required\":[\"id\",\"code\",\"idType\"],\"properties\":{\"id\":{\"type\":\"integer\"},\"code\":{\"type\":\"string\"},"
    "\"name\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"idType\":{\"type\":\"string\"},\"status\":{\"type\":\"string\"},\"custom\":{\"type\":\"boolean\"}}},"
    "\"NamespaceCreate\":{\"type\":\"object\",\"required\":[\"code\",\"name\",\"idType\"],\"properties\":{\"code\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"},\"idType\":{\"type\":\"string\"}}},"
    "\"NamespaceUpdate\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256},"
    "\"description\":{\"type\":\"string\",\"maxLength\":1024},\"code\":{\"type\":\"string\",\"description\":\"immutable: must equal the current code when given\"},"
    "\"idType\":{\"type\":\"string\",\"description\":\"immutable: must equal the current type when given\"}}},"
    "\"NamespaceList\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Namespace\"}},"
    "\"Xid\":{\"type\":\"object\",\"required\":[\"xid\"],\"properties\":{\"xid\":{\"type\":\"string\"}}},"
    "\"IdentityRef\":{\"type\":\"object\",\"properties\":{\"namespace\":{\"type\":\"string\"},\"id\":{\"type\":\"string\"},\"xid\":{\"type\":\"string\"},\"nsId\":{\"type\":\"integer\"}}},"
    "\"IdentityBatchRequest\":{\"type\":\"object\",\"properties\":{\"xids\":{\"type\":\"array\",\"maxItems\":1000,\"items\":{\"type\":\"string\"}},"
    "\"compositeXids\":{\"type\":\"array\",\"maxItems\":1000,\"items\":{\"type\":\"object\"}}}},"
    "\"ClusterMembers\":{\"type\":\"object\"},"
    "\"ClusterMembersBatch\":{\"type\":\"object\"},"
    "\"ClusterHistory\":{\"type\":\"object\"},"
    "\"ClusterHistoryBatch\":{\"type\":\"object\"},"
    "\"IdentityMappingRequest\":{\"type\":\"object\",\"properties\":{\"xids\":{\"type\":\"array\",\"maxItems\":1000,\"items\":{\"type\":\"string\"}},"
    "\"compositeXids\":{\"type\":\"array\",\"maxItems\":1000,\"items\":{\"type\":\"object\"}},\"targetNs\":{\"type\":[\"string\",\"integer\"]}}},"
    "\"IdentityMapping\":{\"type\":\"object\",\"required\":[\"xid\",\"compositeXid\",\"mapping\"],\"properties\":{\"xid\":{\"type\":\"string\"},"
    "\"compositeXid\":{\"type\":\"object\"},\"mapping\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"xid\":{\"type\":\"string\"},"
    "\"compositeXid\":{\"type\":\"object\"},\"lastAssociationTime\":{\"type\":\"integer\"}}}}}},"
    "\"IdentityMappingBatch\":{\"type\":\"object\",\"properties\":{\"version\":{\"type\":\"string\"},\"unprocessedXids\":{\"type\":\"array\"},"
    "\"unprocessedNids\":{\"type\":\"array\"},\"mappings\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/IdentityMapping\"}}}},"
    "\"ClusterExplain\":{\"type\":\"object\"},"
    "\"UnlinkRequest\":{\"type\":\"object\",\"properties\":{\"edge\":{\"type\":\"array\",\"minItems\":2,\"maxItems\":2,\"items\":{\"$ref\":\"#/components/schemas/IdentityRef\"}},"
    "\"identity\":{\"$ref\":\"#/components/schemas/IdentityRef\"}}},"
    "\"UnlinkResult\":{\"type\":\"object\"},"
    "\"LinkingRules\":{\"type\":\"object\",\"properties\":{\"uniqueNamespaces\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"priority\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"maxIdentities\":{\"type\":\"integer\",\"minimum\":2},"
    "\"blockedValues\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}},"
    "\"SchemaDefinition\":{\"type\":\"object\",\"required\":[\"title\"],\"properties\":{\"title\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},"
    "\"meta:class\":{\"type\":\"string\"},\"allOf\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"properties\":{\"type\":\"object\"},"
    "\"required\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"definitions\":{\"type\":\"object\"},\"meta:immutableTags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}},"
    "\"Schema\":{\"type\":\"object\",\"required\":[\"$id\",\"meta:altId\"],\"properties\":{\"$id\":{\"type\":\"string\"},\"meta:altId\":{\"type\":\"string\"},"
    "\"version\":{\"type\":\"string\"},\"title\":{\"type\":\"string\"},\"meta:class\":{\"type\":\"string\"}}},"
    "\"SchemaList\":{\"type\":\"object\",\"properties\":{\"results\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Schema\"}},\"_page\":{\"type\":\"object\"}}},"
    "\"PatchOperation\":{\"type\":\"object\",\"required\":[\"op\",\"path\"],\"properties\":{\"op\":{\"enum\":[\"add\",\"remove\",\"replace\",\"test\"]},"
    "\"path\":{\"type\":\"string\"},\"value\":{}}},"
    "\"JsonPatch\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/PatchOperation\"}},"
    "\"Descriptor\":{\"type\":\"object\",\"required\":[\"@type\",\"xdm:sourceSchema\",\"xdm:sourceProperty\",\"xdm:namespace\"],\"properties\":{"
    "\"@id\":{\"type\":\"string\"},\"@type\":{\"const\":\"xdm:descriptorIdentity\"},\"xdm:sourceSchema\":{\"type\":\"string\"},"
    "\"xdm:sourceProperty\":{\"type\":\"string\"},\"xdm:namespace\":{\"type\":\"string\"},\"xdm:isPrimary\":{\"type\":\"boolean\"}}},"
    "\"DescriptorList\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Descriptor\"}},"
    "\"Dataset\":{\"type\":\"object\",\"required\":[\"id\",\"name\",\"schemaRef\"],\"properties\":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
    "\"schemaRef\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}}},\"tags\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
    "\"created\":{\"type\":\"integer\"},\"updated\":{\"type\":\"integer\"}}},"
    "\"DatasetCreate\":{\"type\":\"object\",\"required\":[\"name\",\"schemaRef\"],\"properties\":{\"name\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},"
    "\"schemaRef\":{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"string\"},\"contentType\":{\"type\":\"string\"}}},"
    "\"tags\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}},"
    "\"DatasetPatch\":{\"oneOf\":[{\"$ref\":\"#/components/schemas/JsonPatch\"},{\"type\":\"object\"}]},"
    "\"DatasetRefs\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"pattern\":\"^@/dataSets/\"}},"
    "\"DatasetMap\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#/components/schemas/Dataset\"}},"
    "\"ImportBatchCreate\":{\"type\":\"object\",\"required\":[\"datasetId\"],\"properties\":{\"datasetId\":{\"type\":\"string\"},"
    "\"inputFormat\":{\"type\":\"object\",\"properties\":{\"format\":{\"const\":\"json\"}}}}},"
    "\"ImportBatch\":{\"type\":\"object\",\"required\":[\"id\",\"status\"],\"properties\":{\"id\":{\"type\":\"string\"},"
    "\"status\":{\"enum\":[\"loading\",\"processing\",\"success\",\"failed\",\"aborted\"]},\"relatedObjects\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
    "\"files\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"metrics\":{\"type\":\"object\",\"properties\":{\"recordsRead\":{\"type\":\"integer\"},"
    "\"recordsWritten\":{\"type\":\"integer\"},\"recordsFailed\":{\"type\":\"integer\"}}},\"errors\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}}},"
    "\"BatchStatusMap\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#/components/schemas/ImportBatch\"}},"
    "\"JsonLines\":{\"type\":\"string\",\"contentMediaType\":\"application/x-ndjson\",\"description\":\"one JSON entity per line\"},"
    "\"MembershipEventStream\":{\"type\":\"string\",\"contentMediaType\":\"text/event-stream\",\"description\":\"server-sent events: 'membership' events whose data is {segmentId, status (realized|exited), lastQualificationTime, clusterId, identity}; 'gap' and 'dropped' events; heartbeat comments\"},"
    "\"BinaryFile\":{\"type\":\"string\",\"contentMediaType\":\"application/octet-stream\"},"
    "\"ConnectionCreate\":{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"},"
    "\"authenticationRequired\":{\"type\":\"boolean\"},\"auth\":{\"type\":\"object\"},\"profileDataset\":{\"type\":\"string\"},\"eventDataset\":{\"type\":\"string\"},"
    "\"userIdNamespace\":{\"type\":\"string\"},\"anonymousIdNamespace\":{\"type\":\"string\"}}},"
    "\"Connection\":{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"inletId\":{\"type\":\"string\"},"
    "\"inletUrl\":{\"type\":\"string\"},\"authenticationRequired\":{\"type\":\"boolean\"},\"writeKey\":{\"type\":\"string\"},"
    "\"profileDataset\":{\"type\":\"string\"},\"eventDataset\":{\"type\":\"string\"}}},"
    "\"ConnectionList\":{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Connection\"}}}},"
    "\"Envelope\":{\"type\":\"object\",\"required\":[\"header\",\"body\"],\"properties\":{\"header\":{\"type\":\"object\",\"required\":[\"schemaRef\",\"datasetId\"],"
    "\"properties\":{\"schemaRef\":{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"string\"},\"contentType\":{\"type\":\"string\"}}},"
    "\"datasetId\":{\"type\":\"string\"},\"imsOrgId\":{\"type\":\"string\"}}},\"body\":{\"type\":\"object\",\"required\":[\"xdmEntity\"],"
    "\"properties\":{\"xdmMeta\":{\"type\":\"object\"},\"xdmEntity\":{\"type\":\"object\"}}}}},"
    "\"EnvelopeBatch\":{\"type\":\"object\",\"required\":[\"messages\"],\"properties\":{\"messages\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Envelope\"}}}},"
    "\"CollectResponse\":{\"type\":\"object\",\"required\":[\"inletId\",\"xactionId\",\"receivedTimeMs\"],\"properties\":{\"inletId\":{\"type\":\"string\"},"
    "\"xactionId\":{\"type\":\"string\"},\"receivedTimeMs\":{\"type\":\"integer\"},\"syncValidation\":{\"type\":\"object\"}}},"
    "\"CollectBatchResponse\":{\"type\":\"object\",\"required\":[\"inletId\",\"batchId\",\"responses\"],\"properties\":{\"inletId\":{\"type\":\"string\"},"
    "\"batchId\":{\"type\":\"string\"},\"receivedTimeMs\":{\"type\":\"integer\"},\"responses\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"xactionId\":{\"type\":\"string\"},\"statusCode\":{\"type\":\"integer\"},\"message\":{\"type\":\"string\"},"
    "\"errors\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/ErrorItem\"}}}}}}},"
    "\"SegmentMessage\":{\"type\":\"object\",\"properties\":{\"type\":{\"type\":\"string\"},\"userId\":{\"type\":[\"string\",\"number\"]},"
    "\"anonymousId\":{\"type\":[\"string\",\"number\"]},\"previousId\":{\"type\":\"string\"},\"event\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
    "\"traits\":{\"type\":\"object\"},\"properties\":{\"type\":\"object\"},\"context\":{\"type\":\"object\"},\"messageId\":{\"type\":\"string\"},"
    "\"timestamp\":{\"type\":\"string\"},\"writeKey\":{\"type\":\"string\"}}},"
    "\"SegmentBatch\":{\"type\":\"object\",\"required\":[\"batch\"],\"properties\":{\"batch\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/SegmentMessage\"}},"
    "\"writeKey\":{\"type\":\"string\"},\"sentAt\":{\"type\":\"string\"},\"context\":{\"type\":\"object\"}}},"
    "\"SegmentSuccess\":{\"type\":\"object\",\"properties\":{\"success\":{\"const\":true}}},"
    "\"ProfileEntry\":{\"type\":\"object\",\"properties\":{\"entityId\":{\"type\":\"string\"},\"sources\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"identities\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"entity\":{\"type\":\"object\"},\"lastModifiedAt\":{\"type\":\"string\"},"
    "\"mergePolicy\":{\"type\":\"object\"}}},"
    "\"EventsPage\":{\"type\":\"object\",\"properties\":{\"_page\":{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},\"next\":{\"type\":\"string\"}}},"
    "\"children\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"relatedEntityId\":{\"type\":\"string\"},\"entityId\":{\"type\":\"string\"},"
    "\"timestamp\":{\"type\":\"integer\"},\"entity\":{\"type\":\"object\"}}}},\"_links\":{\"type\":\"object\"}}},"
    "\"EntitiesResponse\":{\"oneOf\":[{\"$ref\":\"#/components/schemas/EventsPage\"},{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#/components/schemas/ProfileEntry\"}}]},"
    "\"BulkLookupRequest\":{\"type\":\"object\",\"required\":[\"schema\",\"identities\"],\"properties\":{\"schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}},"
    "\"relatedSchema\":{\"type\":\"object\"},\"identities\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"fields\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"mergePolicyId\":{\"type\":\"string\"},\"timeFilter\":{\"type\":\"object\"},\"limit\":{\"type\":\"integer\"},\"orderby\":{\"type\":\"string\"},\"withCA\":{\"type\":\"boolean\"}}},"
    "\"MergePolicyCreate\":{\"type\":\"object\",\"required\":[\"name\",\"schema\",\"identityGraph\",\"attributeMerge\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}},\"identityGraph\":{\"type\":\"object\",\"properties\":{\"type\":{\"enum\":[\"pdg\",\"none\"]}}},"
    "\"attributeMerge\":{\"type\":\"object\",\"properties\":{\"type\":{\"enum\":[\"timestampOrdered\",\"dataSetPrecedence\"]},"
    "\"order\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}},\"default\":{\"type\":\"boolean\"},\"isActiveOnEdge\":{\"type\":\"boolean\"}}},"
    "\"MergePolicy\":{\"allOf\":[{\"$ref\":\"#/components/schemas/MergePolicyCreate\"},{\"type\":\"object\",\"required\":[\"id\",\"version\"],"
    "\"properties\":{\"id\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\"},\"updateEpoch\":{\"type\":\"integer\"}}}]},"
    "\"MergePolicyList\":{\"type\":\"object\",\"properties\":{\"_page\":{\"type\":\"object\"},\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/MergePolicy\"}},"
    "\"_links\":{\"type\":\"object\"}}},"
    "\"MergePolicyBulkGetRequest\":{\"type\":\"object\",\"required\":[\"ids\"],\"properties\":{\"ids\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}}}}}},"
    "\"PqlExpression\":{\"type\":\"object\",\"required\":[\"type\",\"format\",\"value\"],\"properties\":{\"type\":{\"const\":\"PQL\"},"
    "\"format\":{\"enum\":[\"pql/text\",\"pql/json\"]},\"value\":{\"type\":[\"string\",\"object\"]}}},"
    "\"SegmentConversionRequest\":{\"type\":\"object\",\"required\":[\"expression\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"expression\":{\"$ref\":\"#/components/schemas/PqlExpression\"},\"targetFormat\":{\"enum\":[\"pql/text\",\"pql/json\"]}}},"
    "\"SegmentConversion\":{\"type\":\"object\",\"required\":[\"expression\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"expression\":{\"$ref\":\"#/components/schemas/PqlExpression\"}}},"
    "\"SegmentDefinitionCreate\":{\"type\":\"object\",\"required\":[\"name\",\"expression\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"},\"expression\":{\"$ref\":\"#/components/schemas/PqlExpression\"},"
    "\"schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}},\"mergePolicyId\":{\"type\":\"string\"},"
    "\"evaluationInfo\":{\"type\":\"object\"}}},"
    "\"SegmentDefinitionPatch\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},"
    "\"expression\":{\"$ref\":\"#/components/schemas/PqlExpression\"},\"mergePolicyId\":{\"type\":\"string\"}}},"
    "\"SegmentDefinition\":{\"allOf\":[{\"$ref\":\"#/components/schemas/SegmentDefinitionCreate\"},{\"type\":\"object\",\"required\":[\"id\"],"
    "\"properties\":{\"id\":{\"type\":\"string\"},\"evaluationInfo\":{\"type\":\"object\",\"properties\":{\"batch\":{\"type\":\"object\"},"
    "\"continuous\":{\"type\":\"object\"},\"synchronous\":{\"type\":\"object\"}}},\"creationTime\":{\"type\":\"integer\"},"
    "\"updateTime\":{\"type\":\"integer\"}}}]},"
    "\"SegmentDefinitionList\":{\"type\":\"object\",\"properties\":{\"segments\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/SegmentDefinition\"}},"
    "\"page\":{\"type\":\"object\"},\"link\":{\"type\":\"object\"}}},"
    "\"ComputedAttributeDuration\":{\"type\":\"object\",\"required\":[\"count\",\"unit\"],\"properties\":{\"count\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":24},"
    "\"unit\":{\"enum\":[\"HOURS\",\"DAYS\",\"WEEKS\",\"MONTHS\"]}}},"
    "\"ComputedAttributeCreate\":{\"type\":\"object\",\"required\":[\"name\",\"expression\",\"duration\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"displayName\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"expression\":{\"$ref\":\"#/components/schemas/PqlExpression\"},"
    "\"duration\":{\"$ref\":\"#/components/schemas/ComputedAttributeDuration\"},\"status\":{\"enum\":[\"DRAFT\",\"PUBLISHED\"]}}},"
    "\"ComputedAttributePatch\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"displayName\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"},\"expression\":{\"$ref\":\"#/components/schemas/PqlExpression\"},"
    "\"duration\":{\"$ref\":\"#/components/schemas/ComputedAttributeDuration\"},\"status\":{\"enum\":[\"DRAFT\",\"PUBLISHED\"]}}},"
    "\"ComputedAttribute\":{\"type\":\"object\",\"required\":[\"id\",\"name\",\"expression\",\"duration\",\"status\",\"type\"],\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"type\":{\"const\":\"ComputedAttribute\"},\"name\":{\"type\":\"string\"},\"displayName\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"},\"expression\":{\"$ref\":\"#/components/schemas/PqlExpression\"},"
    "\"duration\":{\"$ref\":\"#/components/schemas/ComputedAttributeDuration\"},\"mergeFunction\":{\"type\":\"object\",\"properties\":{\"value\":"
    "{\"enum\":[\"SUM\",\"COUNT\",\"MIN\",\"MAX\",\"AVG\",\"MOST_RECENT\"]}}},\"status\":{\"type\":\"object\",\"properties\":{\"type\":{\"enum\":[\"DRAFT\",\"PUBLISHED\"]},"
    "\"job\":{\"type\":\"string\"}}},\"path\":{\"type\":\"string\"},\"positionPath\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"keepCurrent\":{\"type\":\"boolean\"},\"returnSchema\":{\"type\":\"object\"},\"definedOn\":{\"type\":\"array\"},\"schema\":{\"type\":\"object\"},"
    "\"imsOrgId\":{\"type\":\"string\"},\"sandbox\":{\"type\":\"object\"},\"createEpoch\":{\"type\":\"integer\"},\"updateEpoch\":{\"type\":\"integer\"},"
    "\"backfill\":{\"type\":\"object\",\"properties\":{\"state\":{\"enum\":[\"queued\",\"running\",\"succeeded\",\"failed\"]},\"clustersTotal\":{\"type\":\"integer\"},"
    "\"clustersDone\":{\"type\":\"integer\"},\"eventsScanned\":{\"type\":\"integer\"},\"progress\":{\"type\":\"number\"},\"eventsPerSecond\":{\"type\":\"number\"},"
    "\"queuedAt\":{\"type\":\"string\"},\"startedAt\":{\"type\":\"string\"},\"finishedAt\":{\"type\":\"string\"}}}}},"
    "\"ComputedAttributeList\":{\"type\":\"object\",\"required\":[\"computedAttributes\",\"_page\"],\"properties\":{\"_links\":{\"type\":\"object\"},"
    "\"computedAttributes\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/ComputedAttribute\"}},\"_page\":{\"type\":\"object\"}}},"
    "\"BulkGetRequest\":{\"type\":\"object\",\"required\":[\"ids\"],\"properties\":{\"ids\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}}}}}},"
    "\"SegmentDefinitionBulkGet\":{\"type\":\"object\",\"properties\":{\"results\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#/components/schemas/SegmentDefinition\"}}}},"
    "\"PreviewRequest\":{\"type\":\"object\",\"required\":[\"predicateExpression\"],\"properties\":{\"predicateExpression\":{\"type\":\"string\"},"
    "\"predicateType\":{\"const\":\"pql/text\"},\"predicateModel\":{\"const\":\"_xdm.context.profile\"},\"graphType\":{\"type\":\"string\"}}},"
    "\"PreviewCreated\":{\"type\":\"object\",\"required\":[\"previewId\",\"state\"],\"properties\":{\"previewId\":{\"type\":\"string\"},"
    "\"state\":{\"type\":\"string\"},\"previewQueryId\":{\"type\":\"string\"},\"previewQueryStatus\":{\"type\":\"string\"},\"previewExecutionId\":{\"type\":\"integer\"}}},"
    "\"Preview\":{\"type\":\"object\",\"properties\":{\"results\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"state\":{\"type\":\"string\"},"
    "\"page\":{\"type\":\"object\"},\"links\":{\"type\":\"object\"}}},"
    "\"Estimate\":{\"type\":\"object\",\"properties\":{\"estimatedSize\":{\"type\":\"integer\"},\"numRowsToRead\":{\"type\":\"integer\"},"
    "\"estimatedNamespaceDistribution\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"state\":{\"type\":\"string\"},"
    "\"profilesReadSoFar\":{\"type\":\"integer\"},\"profilesMatchedSoFar\":{\"type\":\"integer\"},\"totalRows\":{\"type\":\"integer\"},"
    "\"standardError\":{\"type\":\"number\"},\"confidenceInterval\":{\"type\":\"string\"}}},"
    "\"SegmentRef\":{\"type\":\"object\",\"required\":[\"segmentId\"],\"properties\":{\"segmentId\":{\"type\":\"string\",\"description\":\"a segment definition id, or * for every segment\"}}},"
    "\"SegmentJobRequest\":{\"oneOf\":[{\"type\":\"array\",\"minItems\":1,\"items\":{\"$ref\":\"#/components/schemas/SegmentRef\"}},"
    "{\"type\":\"object\",\"required\":[\"segments\"],\"properties\":{\"segments\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"$ref\":\"#/components/schemas/SegmentRef\"}}}}]},"
    "\"SegmentJob\":{\"type\":\"object\",\"required\":[\"id\",\"status\",\"segments\",\"metrics\"],\"properties\":{\"id\":{\"type\":\"string\"},"
    "\"status\":{\"enum\":[\"NEW\",\"PROCESSING\",\"SUCCEEDED\",\"FAILED\",\"CANCELLED\"]},\"source\":{\"type\":\"string\"},"
    "\"segments\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"metrics\":{\"type\":\"object\",\"properties\":{"
    "\"totalTime\":{\"type\":\"object\"},\"totalProfiles\":{\"type\":\"integer\"},\"segmentedProfileCounter\":{\"type\":\"object\"},"
    "\"segmentedProfileByStatusCounter\":{\"type\":\"object\"}}},\"creationTime\":{\"type\":\"integer\"},\"kith:progress\":{\"type\":\"object\"}}},"
    "\"SegmentJobList\":{\"type\":\"object\",\"properties\":{\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/SegmentJob\"}},\"_page\":{\"type\":\"object\"}}},"
    "\"JobCancel\":{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"boolean\"},\"message\":{\"type\":\"string\"}}},"
    "\"ExportJobRequest\":{\"type\":\"object\",\"properties\":{\"fields\":{\"type\":\"string\",\"maxLength\":4096},"
    "\"mergePolicy\":{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\"}}},"
    "\"filter\":{\"type\":\"object\",\"properties\":{\"segments\":{\"type\":\"array\",\"maxItems\":1500,\"items\":{\"type\":\"object\",\"required\":[\"segmentId\"],"
    "\"properties\":{\"segmentId\":{\"type\":\"string\"},\"segmentNs\":{\"const\":\"ups\"},\"status\":{\"type\":\"array\",\"items\":{\"enum\":[\"realized\",\"existing\",\"exited\"]}}}}},"
    "\"emptyProfiles\":{\"type\":\"boolean\"}}},\"schema\":{\"type\":\"object\"}}},"
    "\"ExportJob\":{\"type\":\"object\",\"required\":[\"id\",\"status\"],\"properties\":{\"id\":{\"type\":\"integer\"},\"jobType\":{\"const\":\"BATCH\"},"
    "\"status\":{\"enum\":[\"NEW\",\"PROCESSING\",\"SUCCEEDED\",\"FAILED\",\"CANCELLED\"]},\"metrics\":{\"type\":\"object\"},\"kith:progress\":{\"type\":\"object\"},"
    "\"_links\":{\"type\":\"object\"}}},"
    "\"ExportJobList\":{\"type\":\"object\",\"properties\":{\"records\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/ExportJob\"}},\"page\":{\"type\":\"object\"}}},"
    "\"MergePolicyBulkGet\":{\"type\":\"object\",\"properties\":{\"results\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#/components/schemas/MergePolicy\"}}}}"
    "}";

static const struct {
    const char *handler, *request, *response;
} schema_table[] = {
#define X(h, req, resp) {#h, req, resp},
#include "openapi.def"
#undef X
};

static const struct {
    http_handler fn;
    const char *name;
    bool required;
    const char *schema, *description;
} query_table[] = {
#define Q(h, name, req, schema, desc) {h, name, req, schema, desc},
#include "query.def"
#undef Q
};

bool http_query_declared(http_handler fn, const char *name)
{
    for (size_t i = 0; i < sizeof query_table / sizeof query_table[0]; i++)
        if (query_table[i].fn == fn && strcmp(query_table[i].name, name) == 0) return true;
    return false;
}

/* The query parameters of fn, appended to params (OpenAPI parameter objects). */
static void query_params(http_handler fn, json_t *params)
{
    for (size_t i = 0; i < sizeof query_table / sizeof query_table[0]; i++) {
        if (query_table[i].fn != fn) continue;
        char s[512];
        snprintf(s, sizeof s, "%s", query_table[i].schema);
        for (char *p = s; *p; p++)
            if (*p == '\'') *p = '"';
        json_t *schema = json_loads(s, 0, NULL);
        json_t *p = json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", query_table[i].name, "in", "query",
                              "required", query_table[i].required, "description",
                              query_table[i].description, "schema", schema ? schema : json_object());
        /* a repeatable parameter: ?property=a&property=b */
        const char *type = json_string_value(json_object_get(schema, "type"));
        if (type && strcmp(type, "array") == 0) {
            json_object_set_new(p, "style", json_string("form"));
            json_object_set_new(p, "explode", json_true());
        }
        json_array_append_new(params, p);
    }
}

static const struct {
    http_handler fn;
    const char *name;
} handler_names[] = {
#define X(m, pattern, fn, auth, body, summary) {fn, #fn},
#include "routes.def"
#undef X
};

static const char *handler_name(http_handler fn)
{
    for (size_t i = 0; i < sizeof handler_names / sizeof handler_names[0]; i++)
        if (handler_names[i].fn == fn) return handler_names[i].name;
    return "";
}

static int lookup_schema(const char *handler, const char **req, const char **resp)
{
    for (size_t i = 0; i < sizeof schema_table / sizeof schema_table[0]; i++)
        if (strcmp(schema_table[i].handler, handler) == 0) {
            *req = schema_table[i].request;
            *resp = schema_table[i].response;
            return 0;
        }
    return -1;
}

static const char *auth_name(int a)
{
    switch (a) {
    case AUTH_NONE: return "none";
    case AUTH_READ: return "viewer";
    case AUTH_WRITE: return "editor";
    case AUTH_INGEST: return "ingest";
    case AUTH_ADMIN: return "admin";
    default: return "inlet";
    }
}

static json_t *ref(const char *component)
{
    char r[160];
    snprintf(r, sizeof r, "#/components/schemas/%s", component);
    return json_pack("{s:s}", "$ref", r);
}

static json_t *media(const char *component)
{
    const char *type = strcmp(component, "MetricsText") == 0   ? "text/plain"
                       : strcmp(component, "BinaryFile") == 0 ? "application/octet-stream"
                       : strcmp(component, "JsonLines") == 0  ? "application/x-ndjson"
                       : strcmp(component, "MembershipEventStream") == 0 ? "text/event-stream"
                                                              : "application/json";
    return json_pack("{s:{s:o}}", type, "schema", ref(component));
}

int h_openapi(kith_req *r)
{
    size_t n;
    const route *rt = http_routes(&n);
    json_t *paths = json_object();
    json_t *undocumented = json_array();
    static const struct {
        int bit;
        const char *name;
    } ms[] = {{M_GET, "get"}, {M_POST, "post"}, {M_PUT, "put"}, {M_PATCH, "patch"}, {M_DELETE, "delete"}};
    for (size_t i = 0; i < n; i++) {
        char path[512];
        size_t o = 0;
        for (const char *p = rt[i].pattern; *p && o < sizeof path - 1; p++)
            if (*p != '*') path[o++] = *p;
        path[o] = 0;
        json_t *item = json_object_get(paths, path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, path, item);
        }
        json_t *params = json_array();
        for (const char *p = strchr(rt[i].pattern, '{'); p; p = strchr(p + 1, '{')) {
            const char *e = strchr(p, '}');
            if (!e) break;
            const char *nm = p[1] == '*' ? p + 2 : p + 1;
            json_array_append_new(params, json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", nm, (size_t)(e - nm),
                                                    "in", "path", "required", 1, "schema", "type", "string"));
        }
        query_params(rt[i].fn, params);
        const char *name = handler_name(rt[i].fn), *req = "", *resp = "";
        bool documented = lookup_schema(name, &req, &resp) == 0;
        if (!documented) json_array_append_new(undocumented, json_string(name));
        for (size_t m = 0; m < sizeof ms / sizeof ms[0]; m++) {
            if (!(rt[i].method & ms[m].bit)) continue;
            char opid[160];
            snprintf(opid, sizeof opid, "%s_%s", name + 2, ms[m].name);
            json_t *ok = json_pack("{s:s}", "description", "Success");
            if (*resp) json_object_set_new(ok, "content", media(resp));
            json_t *op = json_pack("{s:s, s:s, s:O, s:{s:o, s:{s:s, s:o}}, s:s}", "operationId", opid,
                                   "summary", rt[i].summary, "parameters", params, "responses", "2XX", ok,
                                   "default", "description", "Error (RFC 9457 problem details)",
                                   "content", json_pack("{s:{s:o}}", "application/problem+json", "schema",
                                                        ref("Problem")),
                                   "x-kith-role", auth_name(rt[i].auth));
            if (*req) json_object_set_new(op, "requestBody", json_pack("{s:b, s:o}", "required", 1, "content", media(req)));
            if (!documented) json_object_set_new(op, "x-kith-undocumented", json_true());
            if (rt[i].auth != AUTH_NONE && rt[i].auth != AUTH_INLET)
                json_object_set_new(op, "security", json_pack("[{s:[]}, {s:[]}]", "bearer", "apiKey"));
            json_object_set_new(item, ms[m].name, op);
        }
        json_decref(params);
    }
    json_t *components = json_loads(components_json, 0, NULL);
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:o, s:{s:{s:s, s:s}, s:{s:s, s:s, s:s}}}, s:o}",
        "openapi", "3.1.0", "info", "title", "kith", "version", "0.1.0", "description",
        "kith: a real-time customer profile engine with AEP-compatible APIs", "servers", "url", "/",
        "paths", paths, "components", "schemas", components ? components : json_object(),
        "securitySchemes", "bearer", "type", "http", "scheme", "bearer", "apiKey", "type", "apiKey",
        "in", "header", "name", "x-api-key", "x-kith-undocumented", undocumented);
    http_json(r, 200, doc);
    return 0;
}
