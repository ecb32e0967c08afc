//! Group repositories: several repositories behind one URL.
//!
//! A file is looked for in each member in order and the first that has it answers, so a
//! hosted member listed first wins over a proxy. A listing is different: every member may
//! know versions the others do not, so the group reads all of them and serves one merged
//! listing (and checksums computed from it). A member that fails is skipped with a
//! warning, so an unreachable upstream does not hide what the hosted members have; the
//! first failure is reported only when no member answered at all.

use bytes::Bytes;
use mirror_core::{read_to_bytes, CacheStatus, Digest};

use super::proxy::checksum_of;
use super::respond::{is_metadata, Answer};
use super::{is_absent, parse_listing, Ask, Inner, Repository, Result};
use crate::error::MavenError;
use crate::metadata;
use crate::path::{FileKind, MavenPath};

impl Inner {
    pub(super) async fn group_read(
        &self,
        members: &[String],
        path: &MavenPath,
        ask: &Ask<'_>,
    ) -> Result<Answer> {
        match &path.kind {
            FileKind::Metadata => {
                let (status, listing) = self.merged_listing(members, &path.path, ask).await?;
                Ok(Answer::Made(listing, status))
            }
            FileKind::Checksum { base, kind } if is_metadata(path) => {
                let (status, listing) = self.merged_listing(members, base, ask).await?;
                Ok(Answer::Made(checksum_of(&listing, *kind), status))
            }
            FileKind::Checksum { .. } | FileKind::Artifact => {
                self.first_member(members, path, ask).await
            }
        }
    }

    /// The answer of the first member that has the file.
    async fn first_member(
        &self,
        members: &[String],
        path: &MavenPath,
        ask: &Ask<'_>,
    ) -> Result<Answer> {
        let mut failure = None;
        for member in members {
            let Some(repository) = self.repositories.get(member) else {
                continue;
            };
            let member_path = MavenPath {
                repository: member.clone(),
                ..path.clone()
            };
            match Box::pin(self.read(member, repository, &member_path, ask)).await {
                Ok(answer) => return Ok(answer),
                Err(err) if is_absent(&err) => {}
                Err(err) => {
                    tracing::debug!(member, error = %err, "group member failed");
                    failure.get_or_insert(err);
                }
            }
        }
        Err(failure.unwrap_or(MavenError::NotFound))
    }

    /// Every member's listing of `path`, merged, with the least fresh of the cache statuses
    /// its parts came with. The merge is kept while the members' listings stay the same.
    async fn merged_listing(
        &self,
        members: &[String],
        path: &str,
        ask: &Ask<'_>,
    ) -> Result<(CacheStatus, Bytes)> {
        let mut parts = Vec::new();
        let mut status = CacheStatus::Hit;
        let mut failure = None;
        for member in members {
            match self.member_listing(member, path, ask).await {
                Ok(Some((answered, digest))) => {
                    status = least_fresh(status, answered);
                    parts.push((member, digest));
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(member, path, error = %err, "skipping a member's listing");
                    failure.get_or_insert(err);
                }
            }
        }
        let key = (
            format!("{}\n{path}", members.join(" ")),
            parts.iter().map(|(_, digest)| digest.clone()).collect(),
        );
        if let Some(merged) = self.merged_listings.get(&key) {
            return Ok((status, merged));
        }
        let mut documents = Vec::new();
        for (member, digest) in parts {
            match self.read_listing(member, &digest).await {
                Ok(document) => documents.push(document),
                Err(err) => {
                    tracing::warn!(member, path, error = %err, "skipping a member's listing");
                    failure.get_or_insert(err);
                }
            }
        }
        if documents.is_empty() {
            return Err(failure.unwrap_or(MavenError::NotFound));
        }
        let merged = Bytes::from(metadata::write(&metadata::merge(&documents)));
        self.merged_listings.insert(key, merged.clone());
        Ok((status, merged))
    }

    /// The digest of one member's listing, with how the cache answered; `None` when the
    /// member has none.
    async fn member_listing(
        &self,
        member: &str,
        path: &str,
        ask: &Ask<'_>,
    ) -> Result<Option<(CacheStatus, Digest)>> {
        self.authorize(
            ask.identity.as_ref(),
            member,
            path,
            mirror_core::auth::Action::Read,
        )?;
        match self.repositories.get(member) {
            Some(Repository::Hosted(_)) => Ok(self
                .hosted_listing(member, path)
                .await?
                .map(|digest| (CacheStatus::Hit, digest))),
            Some(Repository::Proxy(upstream)) => {
                match self.proxy_listing_digest(member, upstream, path).await {
                    Ok(answer) => Ok(Some(answer)),
                    Err(err) if is_absent(&err) => Ok(None),
                    Err(err) => Err(err),
                }
            }
            Some(Repository::Group(_)) | None => Ok(None),
        }
    }

    /// A member's listing, read and parsed.
    async fn read_listing(&self, member: &str, digest: &Digest) -> Result<metadata::Metadata> {
        let bytes = read_to_bytes(self.cache.blobs().as_ref(), digest).await?;
        parse_listing(bytes)
            .await?
            .map_err(|reason| MavenError::MalformedMetadata {
                repository: member.to_owned(),
                reason,
            })
    }
}

/// The status that says most about freshness: a stale part makes the whole stale.
fn least_fresh(a: CacheStatus, b: CacheStatus) -> CacheStatus {
    let rank = |status| match status {
        CacheStatus::Hit => 0,
        CacheStatus::Revalidated => 1,
        CacheStatus::Stale => 3,
        _ => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}
