"""Everything that imports botocore (boto3 is the sandbox's alone): sts/ (AssumeRole sources,
clients, error mapping, parameters), profiles (~/.aws/config), the data loader every session
shares (loader), trust policies read, doctor's checks (diagnose)."""
