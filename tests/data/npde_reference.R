# Reference numbers of R's npde package (3.5, built from source) for ctkinetics' NPDE
# (issue 16; tests/population/test_npde.py). Inputs: the shared data sets written by
# tests/data/npde_shared_make.py (R's Theoph fitted by ctkinetics, 100 simulated replicates;
# the second with an LLOQ of 1 mg/L, BLQ as censored). Run from the repository root:
#
#     Rscript tests/data/npde_reference.R
#
# npd = qnorm(pd) (npde stores npd only when data are censored). npde settings: decorr.method = "cholesky", cens.method = "cdf", ties = TRUE (defaults of
# autonpde). Writes
# - npde_theoph_r.csv        per observation: ypred, ycomp, pd, npd, npde (no censoring:
#                            deterministic, compared exactly)
# - npde_theoph_r_tests.csv  gof.test of npde and npd (p-values as npde prints them)
# - npde_theoph_blq_r_tests.csv  the same for the censored data set, for seeds 1..40 (the
#                            imputation of censored values is random: compared within
#                            Monte-Carlo error)
# - npde_theoph_blq_r.csv    per observation, seed 1: ploq, pd of the quantified samples
#                            (deterministic) and the rest
suppressMessages(library(npde))
dir <- "tests/data"

run <- function(name, seed) {
  obs <- read.csv(file.path(dir, paste0(name, "_obs.csv")))
  sim <- read.csv(gzfile(file.path(dir, paste0(name, "_sim.csv.gz"))))
  set.seed(seed)
  x <- autonpde(obs, sim, iid = 1, ix = 2, iy = 3, icens = 4, boolsave = FALSE,
                cens.method = "cdf", ties = TRUE, decorr.method = "cholesky", verbose = FALSE)
  x
}

tests <- function(x, seed) {
  do.call(rbind, lapply(c("npde", "npd"), function(w) {
    v <- if (w == "npd") qnorm(x@results@res$pd) else x@results@res$npde
    g <- gof.test(v, which = w, verbose = FALSE)
    data.frame(seed = seed, statistic = w, n = g$nobs, mean = g$mean, se_mean = g$se.mean,
               variance = g$var, se_variance = g$se.var, skewness = g$skewness,
               kurtosis = g$kurtosis, p_mean = g$p.value[[1]], p_variance = g$p.value[[2]],
               p_normality = g$p.value[[3]], p_global = g$p.value[[4]])
  }))
}

x <- run("npde_theoph", 1)
r <- x@results@res
write.csv(data.frame(id = x@data@data$id, time = x@data@data$time, ypred = r$ypred,
                     ycomp = r$ycomp, pd = r$pd, npd = qnorm(r$pd), npde = r$npde),
          file.path(dir, "npde_theoph_r.csv"), row.names = FALSE)
write.csv(tests(x, 1), file.path(dir, "npde_theoph_r_tests.csv"), row.names = FALSE)

all <- list()
for (s in 1:40) {
  xb <- run("npde_theoph_blq", s)
  all[[s]] <- tests(xb, s)
  if (s == 1) {
    rb <- xb@results@res
    write.csv(data.frame(id = xb@data@data$id, time = xb@data@data$time,
                         cens = xb@data@data$cens, ploq = xb@results@ploq, ypred = rb$ypred,
                         ycomp = rb$ycomp, pd = rb$pd, npd = qnorm(rb$pd),
                         npde = rb$npde),
              file.path(dir, "npde_theoph_blq_r.csv"), row.names = FALSE)
  }
}
write.csv(do.call(rbind, all), file.path(dir, "npde_theoph_blq_r_tests.csv"),
          row.names = FALSE)
print(tests(x, 1))
print(aggregate(cbind(mean, variance) ~ statistic, do.call(rbind, all), mean))
cat(R.version.string, "npde", as.character(packageVersion("npde")), "\n")
