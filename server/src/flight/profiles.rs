//! The `lakehouse.profile.*` actions: model profiles and the GPU slot.

use std::sync::Arc;

use arrow_flight::Action;
use lakehouse_flight_ext::v1::{
    ProfileActivateRequest, ProfileCreateRequest, ProfileDropRequest, ProfileListRequest, job,
};
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::extension::{ActionStream, decode, job_reply, one};
use super::service::LakehouseService;
use super::status::profile_status;
use crate::profiles::Profiles;

impl LakehouseService {
    fn profiles(&self) -> Result<&Arc<Profiles>, Status> {
        self.profiles
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this server has no model profiles"))
    }

    /// `lakehouse.profile.create`.
    pub(super) async fn profile_create(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (ProfileCreateRequest, _) = decode(request.get_ref())?;
        let profile = self
            .profiles()?
            .create(body)
            .await
            .map_err(profile_status)?;
        Ok(one(&profile, encoding))
    }

    /// `lakehouse.profile.list`.
    pub(super) fn profile_list(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (_, encoding): (ProfileListRequest, _) = decode(request.get_ref())?;
        Ok(one(&self.profiles()?.list(), encoding))
    }

    /// `lakehouse.profile.drop`.
    pub(super) async fn profile_drop(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (ProfileDropRequest, _) = decode(request.get_ref())?;
        let dropped = self
            .profiles()?
            .drop_profile(body.name.trim())
            .await
            .map_err(profile_status)?;
        Ok(one(&dropped, encoding))
    }

    /// `lakehouse.profile.activate`: a job, so a client may follow a slow model load.
    pub(super) async fn profile_activate(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let user = Caller::of(&request);
        let (body, encoding): (ProfileActivateRequest, _) = decode(request.get_ref())?;
        let profiles = Arc::clone(self.profiles()?);
        let name = body.name.trim().to_string();
        profiles.check_activation(&name).map_err(profile_status)?;
        let handle = spawn_activation(&profiles, &self.engine.services().jobs, name, user);
        Ok(job_reply(&handle, body.detach, encoding))
    }
}

/// Starts the job that activates profile `name` ("" releases the slot).
pub(crate) fn spawn_activation(
    profiles: &Arc<Profiles>,
    jobs: &Arc<crate::jobs::Jobs>,
    name: String,
    user: String,
) -> Arc<crate::jobs::JobHandle> {
    let description = if name.is_empty() {
        "release the GPU slot".to_string()
    } else {
        format!("activate profile {name} in the GPU slot")
    };
    let profiles = Arc::clone(profiles);
    jobs.spawn(
        lakehouse_flight_ext::actions::PROFILE_ACTIVATE,
        description,
        user,
        move |ctx| async move {
            profiles
                .activate(&name, &ctx)
                .await
                .map(job::Result::ProfileActivation)
                .map_err(profile_status)
        },
    )
}
